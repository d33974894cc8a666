package emulator

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// MySQLOptions configure an emulated RDS for MySQL instance in front of a
// real MySQL or MariaDB server.
type MySQLOptions struct {
	// Endpoint is the RDS-like name the instance answers to; default
	// "emulated-mysql.c0ffee123456.REGION.rds.amazonaws.com".
	Endpoint string
	// Port is the port in the endpoint (and so in tokens); default 3306.
	Port int
	// ResourceID is the DbiResourceId in the dbuser ARN; default
	// "db-EMULATEDMYSQL000001".
	ResourceID string
	// Listen is the address to listen on; default 127.0.0.1:0.
	Listen string
	// Backend is the host:port of the real server. The emulator logs in to
	// it as the client's user with BackendPassword (mysql_native_password
	// or caching_sha2_password), so the backend sees the real user, as on
	// RDS; over TLS when BackendTLS is set, so the session's Ssl_cipher
	// and REQUIRE SSL behave as on RDS.
	Backend         string
	BackendPassword string
	BackendTLS      *tls.Config
	// IAMUsers are the users created IDENTIFIED WITH AWSAuthenticationPlugin
	// on this instance. MariaDB and MySQL have no such plugin, so the
	// emulator keeps the list itself: these users are switched to
	// mysql_clear_password and must present a valid token; any other user
	// is refused with "Access denied", as RDS refuses a token for a
	// password user. "*" makes every user an IAM user. Change it later
	// with SetIAMUser.
	IAMUsers []string
	// Certificate, when set, is served instead of a certificate issued by
	// the CA for Endpoint (an expired one, one for another name, ...).
	Certificate *tls.Certificate
	// MySQL8 makes the front greet like RDS for MySQL 8.0 whatever the
	// backend is: version 8.0.39, no MariaDB extended capabilities,
	// utf8mb4_0900_ai_ci, caching_sha2_password as the default plugin.
	MySQL8 bool
	// AlwaysSwitch sends the AuthSwitchRequest to mysql_clear_password
	// even to a client that answered with it already, as RDS does when the
	// first answer's plugin is not the account's.
	AlwaysSwitch bool
	Logger       *slog.Logger

	// shim, set only for an Aurora cluster's members, answers the topology
	// queries MariaDB cannot (see Cluster.mysqlTopology and
	// copyShimmed); nil relays every byte as it comes.
	shim func(query string) (replacement string, ok bool)
}

// MySQL is a running emulated RDS for MySQL front.
type MySQL struct {
	*instance
	opts MySQLOptions

	mu       sync.Mutex
	iamUsers map[string]bool
}

// StartMySQL starts an RDS IAM front for MySQL. Like RDS with IAM database
// authentication enabled, it mirrors the server's greeting, requires TLS,
// switches IAM users to mysql_clear_password, checks the password as an IAM
// token (signature, expiry, host, port, region, user, the caller's
// rds-db:connect permission), and answers every failure with
// "Access denied for user 'U'@'HOST' (using password: YES)", logging the
// real reason.
func (a *AWS) StartMySQL(ca *CA, o MySQLOptions) (*MySQL, error) {
	if o.Backend == "" {
		return nil, errors.New("emulator: MySQLOptions.Backend is required")
	}
	inst, err := a.newInstance(ca, instanceOptions{endpoint: o.Endpoint, port: o.Port, resourceID: o.ResourceID,
		listen: o.Listen, cert: o.Certificate, log: o.Logger, kind: "rds-mysql",
		defaultName: "emulated-mysql", defaultPort: 3306, defaultResourceID: "db-EMULATEDMYSQL000001"})
	if err != nil {
		return nil, err
	}
	m := &MySQL{instance: inst, opts: o, iamUsers: map[string]bool{}}
	for _, u := range o.IAMUsers {
		m.iamUsers[u] = true
	}
	m.serve(m.serveConn)
	return m, nil
}

// SetIAMUser makes user an IAM user of this instance, or not.
func (m *MySQL) SetIAMUser(user string, iam bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.iamUsers[user] = iam
}

func (m *MySQL) isIAMUser(user string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.iamUsers[user] || m.iamUsers["*"]
}

// abandonUser is the user an abandoned backend login names (see
// mywire.Pending.Abandon); no such user exists.
const abandonUser = "rds-iam-emulator-abandoned"

// dialBackend connects to the real server and reads its greeting.
func (m *MySQL) dialBackend(ctx context.Context) (*mywire.Pending, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", m.opts.Backend)
	if err != nil {
		return nil, err
	}
	return mywire.ReadGreeting(ctx, c)
}

// serveConn serves one client.
func (m *MySQL) serveConn(ctx context.Context, c net.Conn) {
	c.SetDeadline(time.Now().Add(30 * time.Second))
	hctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	log := m.log.With("client", c.RemoteAddr().String())

	pending, err := m.dialBackend(hctx)
	if err != nil {
		log.Error("backend unreachable", "err", err)
		mywire.WriteServerError(c, 0, mywire.ErUpstreamConnect, "the database system is not reachable")
		return
	}
	loggedIn := false
	defer func() {
		if !loggedIn {
			pending.Abandon(abandonUser)
		}
	}()
	scramble, err := mywire.NewScramble()
	if err != nil {
		log.Error("no scramble", "err", err)
		return
	}
	greeting := mywire.Mirror(pending.Greeting, scramble, mywire.PluginNativePassword, true)
	if m.opts.MySQL8 {
		greeting.ServerVersion, greeting.AuthPlugin, greeting.Charset = "8.0.39", mywire.PluginCachingSHA2, 255
		greeting.Caps |= mywire.CapLongPassword
		greeting.ExtCaps = 0
	}
	hello, err := mywire.Greet(c, greeting, mywire.GreetOptions{TLS: m.tls})
	if err != nil {
		log.Info("handshake failed", "err", err)
		var pe *mywire.ProtocolError
		if errors.As(err, &pe) {
			mywire.WriteServerError(hello.Conn, pe.Seq, pe.Code, pe.Message)
		}
		return
	}
	conn, resp := hello.Conn, hello.Response
	seq := hello.Seq + 1
	user := resp.User
	log = log.With("user", user)
	host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	denied := fmt.Sprintf("Access denied for user '%s'@'%s' (using password: YES)", user, host)

	if !hello.TLS {
		// RDS runs with require_secure_transport for IAM users' sake.
		log.Warn("login refused: not over TLS")
		mywire.WriteServerError(conn, seq, mywire.ErSecureTransportReqd, "Connections using insecure transport are prohibited while --require_secure_transport=ON.")
		return
	}
	if !m.isIAMUser(user) {
		log.Warn("login refused: not an IAM user of this instance (not IDENTIFIED WITH AWSAuthenticationPlugin)")
		mywire.WriteServerError(conn, seq, mywire.ErAccessDenied, denied)
		return
	}
	if !m.IAMAuthEnabled() {
		log.Warn("login refused: IAM database authentication is not enabled on this instance")
		mywire.WriteServerError(conn, seq, mywire.ErPluginNotLoaded, "Plugin 'AWSAuthenticationPlugin' is not loaded")
		return
	}
	token := resp.AuthData
	if resp.AuthPlugin != mywire.PluginClearPassword || m.opts.AlwaysSwitch {
		token, seq, err = mywire.AuthSwitch(conn, seq, mywire.PluginClearPassword, nil)
		if err != nil {
			log.Info("no password after the auth switch", "err", err)
			return
		}
	}
	token = bytes.TrimSuffix(token, []byte{0})
	caller, err := m.verifyToken(string(token), user)
	if err != nil {
		log.Warn("IAM token rejected", "reason", err.Error())
		mywire.WriteServerError(conn, seq, mywire.ErAccessDenied, denied+competingSuffix(err))
		return
	}
	log = log.With("caller", caller.ARN)

	sess, err := pending.Login(hctx, m.opts.BackendTLS, mywire.Login{User: user, Database: resp.Database, Password: m.opts.BackendPassword,
		Plugin: mywire.PluginNativePassword, Client: resp, LocalInfile: true})
	loggedIn = true // Login owns the connection now
	if err != nil {
		var se *mywire.ServerError
		if errors.As(err, &se) {
			log.Warn("backend refused the login", "err", err)
			mywire.WriteServerError(conn, seq, se.Code, se.Message)
			return
		}
		log.Error("backend login failed", "err", err)
		mywire.WriteServerError(conn, seq, mywire.ErUpstreamConnect, "Lost connection to the database during login")
		return
	}
	defer sess.Conn.Close()
	if err := mywire.WritePacket(conn, seq, sess.OK); err != nil {
		return
	}
	c.SetDeadline(time.Time{})
	sess.Conn.SetDeadline(time.Time{})
	log.Info("IAM login accepted")
	if m.opts.shim != nil {
		relayWith(ctx, conn, sess.Conn, relayLinger, func(dst, src net.Conn) halfEnd { return copyShimmed(dst, src, m.opts.shim) })
		return
	}
	relay(ctx, conn, sess.Conn, relayLinger)
}
