"""Scaling one job out over model replicas on Ray: a CEM generation's candidates and an evaluation's
questions are handed to a pool of Ray actors, each holding the model and its spectra once.

| module     | holds                                                                                   |
| ---------- | --------------------------------------------------------------------------------------- |
| settings   | the replica settings of a spec (``replicas``, ``ray_address``, ``threads``) and their checks |
| cluster    | connecting to Ray (a local runtime, or an existing cluster) and sizing the replicas         |
| replica    | the actor: one loaded model that scores what it is sent (alphas, experts, question shards)   |
| pool       | the replicas of one job: dynamic hand-out, restarts of dead replicas, per-replica throughput |
| sharding   | evaluations split into question shards and merged back, and the ``eval`` job on replicas     |
| scorer     | the CEM objective over a pool (the same scores as :class:`~t2reg.adaptation.search.objective.MixtureScorer`) |

Ray is an optional dependency (``pip install 't2reg[ray]'``). Nothing here is imported unless a spec
asks for replicas, and only ``cluster``, ``pool`` and ``replica`` import Ray, inside their functions:
a run without replicas never loads it. Ray carries the compute of one job only; the job queue stays in
the registry.
"""
