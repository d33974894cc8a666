package mywire

// Capability flags (the low 32 bits of the MySQL and MariaDB handshake).
const (
	CapLongPassword     uint32 = 1 << 0 // MariaDB: CLIENT_MYSQL; clear means extended caps follow
	CapFoundRows        uint32 = 1 << 1
	CapLongFlag         uint32 = 1 << 2
	CapConnectWithDB    uint32 = 1 << 3
	CapNoSchema         uint32 = 1 << 4
	CapCompress         uint32 = 1 << 5
	CapODBC             uint32 = 1 << 6
	CapLocalFiles       uint32 = 1 << 7
	CapIgnoreSpace      uint32 = 1 << 8
	CapProtocol41       uint32 = 1 << 9
	CapInteractive      uint32 = 1 << 10
	CapSSL              uint32 = 1 << 11
	CapIgnoreSigpipe    uint32 = 1 << 12
	CapTransactions     uint32 = 1 << 13
	CapReserved         uint32 = 1 << 14
	CapSecureConnection uint32 = 1 << 15
	CapMultiStatements  uint32 = 1 << 16
	CapMultiResults     uint32 = 1 << 17
	CapPSMultiResults   uint32 = 1 << 18
	CapPluginAuth       uint32 = 1 << 19
	CapConnectAttrs     uint32 = 1 << 20
	CapPluginAuthLenenc uint32 = 1 << 21
	CapExpiredPasswords uint32 = 1 << 22
	CapSessionTrack     uint32 = 1 << 23
	CapDeprecateEOF     uint32 = 1 << 24
	CapOptionalMetadata uint32 = 1 << 25
	CapZstd             uint32 = 1 << 26
	CapQueryAttributes  uint32 = 1 << 27
	CapMultiFactorAuth  uint32 = 1 << 28 // MySQL 8.0.27+: AuthNextFactor packets during login
)

// handshakeOnly are the flags that shape only the login itself. A login
// that relays a client's session afterwards sets them toward the server as
// its own login needs, whatever the client chose; every other flag is the
// client's choice intersected with the server's, because after the login
// the client and the server must agree on how each command and result is
// framed.
const handshakeOnly = CapSSL | CapSecureConnection | CapPluginAuth | CapPluginAuthLenenc |
	CapConnectAttrs | CapConnectWithDB | CapCompress | CapZstd | CapMultiFactorAuth

// clientGreetingCaps are the capabilities a relaying front offers a
// client: the server's, without compression (a relay does not decompress;
// a compressed session could not be followed) and without TLS unless the
// front itself offers it.
//
// Multi-factor auth is never offered either way: the front's login to the
// server is one factor, and the client's is none.
func clientGreetingCaps(server uint32, frontTLS bool) uint32 {
	caps := server &^ (CapCompress | CapZstd | CapSSL | CapMultiFactorAuth)
	if frontTLS {
		caps |= CapSSL
	}
	return caps
}

// upstreamCaps are the capabilities sent to the server for a client's
// session: exactly client ∩ server for everything that frames commands and
// results, plus what the login itself needs.
func upstreamCaps(client, server uint32, db string, attrs bool, tls bool) uint32 {
	caps := client & server &^ handshakeOnly
	caps |= CapProtocol41 | CapSecureConnection | CapPluginAuth
	caps |= server & CapPluginAuthLenenc
	if tls {
		caps |= CapSSL
	}
	if db != "" {
		caps |= CapConnectWithDB
	}
	if attrs && server&CapConnectAttrs != 0 {
		caps |= CapConnectAttrs
	}
	return caps
}

// hasExtCaps says whether a greeting or response carries MariaDB's extended
// capabilities: MariaDB clears CLIENT_MYSQL (bit 0) to say so.
func hasExtCaps(caps uint32) bool { return caps&CapLongPassword == 0 }
