"""The local service's backend, one module per resource family (moto's models side; server.py is responses).

`PersonalizeBackend` (include/local_personalize/models.py) joins the mixins: `dataset_groups`
(dataset groups, schemas, datasets, import jobs), `solutions` (recipes, solutions, versions,
training), `campaigns` (campaigns and the runtime), `events` (filters, event trackers, PutEvents /
PutItems / PutUsers), `batch` (batch inference jobs), `recommenders` (domain use cases),
`data_jobs` (data deletion and dataset export jobs), `metric_attributions` (online metrics from
events with a recommendationId), `batch_segments` (batch segment jobs), `catalog` (algorithms,
feature transformations, domain recipes, UpdateDataset / UpdateSolution), `actions` (the action
APIs' documented errors), all on `core.BackendCore` (state, ARNs, tags,
paging, status transitions).
"""
