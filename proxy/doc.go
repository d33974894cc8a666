// Package proxy is the core every engine runs in. Serve (serve.go) drives
// each client connection the same way: admit (counted, deadlines, the
// handshake cap; the engine calls Admit for the connection limits) -> the
// engine reads the client's handshake and says who it is -> a token -> the
// engine logs in upstream -> the engine finishes the client's handshake
// -> relay -> one log line and metrics. Every refusal on the way goes
// through one sink that logs it, counts it and has the engine tell the
// client (serve.go, refuse). An Engine (engine.go) holds only what differs
// between wire protocols; proxy/postgres and proxy/mysql implement it.
//
// Around that: the accept loop and shutdown (Server, server.go), the caps
// on connections (gate.go for those logging in, limit.go for those
// served), one connection's login bookkeeping (login.go: deadlines, the
// drain's cut, eviction), the settings every engine takes (settings.go),
// the failures every engine shares (explain.go, lost.go: made as
// failure.Failure values), the upstream dial with dead-path detection
// (dial.go, deadpath*.go), and the byte relay that runs once a connection
// is logged in (relay.go, with its idle timer in idle.go, the engines'
// farewell hook in farewell.go and the session's closing log line in
// relaylog.go).
package proxy
