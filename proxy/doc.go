// Package proxy holds what every engine's proxy shares: the accept loop and
// connection lifecycle (Server) and the byte relay that runs once a
// connection is logged in (Relay). The engines live in proxy/postgres and
// proxy/mysql and plug in as a Handler.
package proxy
