package pgwire

// SQLSTATE codes of the errors a server (or a proxy speaking for one)
// answers during the handshake.
const (
	CodeConnectionFailure    = "08001" // sqlclient_unable_to_establish_sqlconnection
	CodeConnectionLost       = "08006" // connection_failure: drivers and pools reconnect on class 08
	CodeProtocolViolation    = "08P01"
	CodeInvalidAuthorization = "28000"
	CodeInvalidPassword      = "28P01"
	CodeTooManyConnections   = "53300"
	CodeFeatureNotSupported  = "0A000"
	CodeAdminShutdown        = "57P01"
	CodeCannotConnectNow     = "57P03" // "the database system is starting up" (or shutting down)
)
