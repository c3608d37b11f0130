"""A Marathon-compatible framework for long-running apps, with Marathon's v2 REST API.

Run it with ``mesonb marathon --master HOST:PORT`` (see :mod:`.cli`), or from Python
through ``cluster.apps`` (:mod:`.apps_client`). The modules, one concept each:

* :mod:`.model` — the app definition, Marathon's defaults and validation (422 shape);
* :mod:`.instance_fsm`, :mod:`.deployment_fsm` — the state machines (transition tables);
* :mod:`.controller` — what an app needs next (scaling, rolling upgrades);
* :mod:`.launcher`, :mod:`.constraints`, :mod:`.taskinfo` — offers to TaskInfos;
* :mod:`.backoff`, :mod:`.health` — launch delays, Marathon-side health/readiness checks;
* :mod:`.appstate` — what is kept per app (backoff, last failure, offer statistics);
* :mod:`.core` — the scheduler handler that owns the state, with :mod:`.deployments`
  (carrying out deployments) and :mod:`.checks` (recording health); :mod:`.operations` —
  changes (create, update, scale, delete, groups, cancel);
* :mod:`.storage`, :mod:`.election` — persistence (disk or ZooKeeper), leader election;
* :mod:`.api` — the REST API; :mod:`.views` — its JSON; :mod:`.service` — one instance;
* :mod:`.apps_client`, :mod:`.progress` — ``cluster.apps`` and its deployment widget.
"""
