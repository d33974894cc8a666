package failure

// Reason labels a failure in logs and metrics: short, fixed words shared
// by every engine. Each engine picks its default protocol code from it.
type Reason string

const (
	Protocol     Reason = "protocol"
	Credentials  Reason = "credentials"
	Limit        Reason = "limit"
	Shutdown     Reason = "shutdown"
	UpstreamAuth Reason = "upstream_auth"
	UpstreamTLS  Reason = "upstream_tls"
	UpstreamDial Reason = "upstream_unreachable"
	Upstream     Reason = "upstream_error"
	Timeout      Reason = "timeout"
	ClientGone   Reason = "client_gone" // the client left before its login finished
	// HandshakeLimit: refused at accept, the cap on connections logging in
	// (--max-handshakes) being full of busy logins.
	HandshakeLimit Reason = "handshake_limit"
	// Evicted: closed before its first packet to make room for a newcomer
	// (a full handshake cap, or MySQL's cap on unanswered greetings).
	Evicted Reason = "evicted"
	// CancelRequest is not a failure: a Postgres cancel request's
	// connection, which ends once the cancel is forwarded.
	CancelRequest Reason = "cancel_request"
	// LoginRate: the proxy's guard on the IAM login rate to an endpoint
	// (--login-rate, --max-logins-in-progress) had no turn for it within
	// --login-wait.
	LoginRate Reason = "login_rate"
)
