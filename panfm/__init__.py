"""PANfm's work, one subpackage per area; other code reaches an area through its front door.

Front doors: `config` (settings), `throughput_collector` (collector), `throughput_storage`
(storage), `alerts` (alerting), `app` (web), `clock` (the clock's composition root). Areas
without a top-level module are reached through their package: `panfm.xmlapi`, `panfm.ops`,
and `panfm.models` (the dataclasses every area passes around). See CONTRIBUTING.md.
"""
