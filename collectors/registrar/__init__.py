"""The registrar's view of the endpoints: who is registered there now, and who was refused.

One poll of a registrar covers every endpoint registered there and gives a `RegistrarContacts`
observation; the core joins it to endpoints by AoR.

Each registrar is one module with two halves kept apart: pure functions that turn the
registrar's answer into `Contact`s and `RegistrationFailure`s (no I/O: fuzzed and tested on
their own), and a collector that fetches the answer over the registrar's management interface.
`kamailio` reads Kamailio's JSON-RPC (jsonrpcs over HTTP) through `http_json`, which any
HTTP+JSON registrar API can reuse (Asterisk ARI's `GET /ari/endpoints`); a registrar with its
own socket protocol (Asterisk AMI, FreeSWITCH ESL, GnuGk's status port) brings its transport
in its module and keeps the same split.
"""
