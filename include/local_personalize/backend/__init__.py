"""The local service's backend, one module per resource family (moto's models side; server.py is responses).

`PersonalizeBackend` (include/local_personalize/models.py) joins the mixins: `dataset_groups`
(dataset groups, schemas, datasets, import jobs), `solutions` (recipes, solutions, versions,
training), `campaigns` (campaigns and the runtime), `events` (filters, event trackers, PutEvents /
PutItems / PutUsers), `batch` (batch inference jobs), all on `core.BackendCore` (state, ARNs, tags,
paging, status transitions).
"""
