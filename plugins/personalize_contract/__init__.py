"""What Amazon Personalize is, as this project reads its documentation: one neutral contract.

Imported by the pipeline (include/pipeline), the provider layer (plugins/personalize) and the local
service (include/local_personalize), and importing none of them: plain Python and the standard
library only, so every Airflow component (the triggerer too) and the local service's container can
import it. The local service's tests keep literal expectations from AWS's documentation rather than
reading them from here, so a misreading shared by the validator and the service still fails a test.

| Module | Contents |
| --- | --- |
| `names` | resource name pattern and the 63-character limit |
| `data_rules` | dataset types, required and record-key fields, schema and value rules, training minimums |
| `metrics` | the keys GetSolutionMetrics returns |
| `recipes` | recipe ARNs, Personalize's recipes and their types, which accept trainingMode UPDATE, what each type is asked with (user, item, user + item list) |
| `domains` | domain dataset groups (ECOMMERCE, VIDEO_ON_DEMAND) and their use cases (recommender recipes) |
| `filter_grammar` | the filter expression language: tokens, syntax tree, parser, filterValues |
| `quotas` | the quotas per dataset group: active solutions, active campaigns, recommenders, filters |
"""
