// Package proxy holds what every engine's proxy shares: the accept loop and
// connection lifecycle (Server, server.go), the caps on connections
// (gate.go for those logging in, limit.go for those served), one
// connection's login bookkeeping (login.go: deadlines, the drain's cut,
// eviction), the settings every engine takes (settings.go), the upstream
// dial with dead-path detection (dial.go, deadpath*.go), and the byte relay
// that runs once a connection is logged in (relay.go, with its idle timer
// in idle.go, the engines' farewell hook in farewell.go and the session's
// closing log line in relaylog.go). The engines live in proxy/postgres and
// proxy/mysql and plug in as a Handler.
package proxy
