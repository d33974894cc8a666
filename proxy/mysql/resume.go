package mysql

import "github.com/rds-iam-proxy/rds-iam-proxy/proxy"

// Resuming says a failed dial for the server's greeting looks like a
// paused Aurora Serverless v2 cluster resuming: the connect refused, or
// the connection reset or closed before the greeting. Only the dial is
// retried under resume_wait (see proxy.Resume): once the client has the
// server's greeting (its connection id, its capabilities) the login
// cannot move to another connection. An ERR in place of the greeting
// (too many connections, host blocked) is the server's answer, not a
// resume.
func Resuming(err error) bool { return proxy.ConnectionTurnedAway(err) }

// The Proxy is no proxy.Resumer: the core's login, after the greeting,
// is not retried (see above); dialForGreeting holds the dial itself.
