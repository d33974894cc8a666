package mysql

import (
	"errors"

	"github.com/rds-iam-proxy/rds-iam-proxy/failure"
	"github.com/rds-iam-proxy/rds-iam-proxy/wire/mywire"
)

// clientPlugins are client auth plugins a client may pick by default
// (--default-auth, MySQL 9 without mysql_native_password) that need
// nothing from the server but a scramble, so the proxy can let the client
// answer with its own plugin and ignore the answer.
var clientPlugins = map[string]bool{
	mywire.PluginNativePassword: true, mywire.PluginCachingSHA2: true, mywire.PluginClearPassword: true,
	"sha256_password": true, "client_ed25519": true,
}

// settleClientAuth finishes a client's login to the proxy, which checks no
// password: a client that answered with the plugin offered is done; one
// that answered with another plugin (its default) is asked to answer again
// with that plugin, as servers do, since clients refuse an OK to an answer
// they consider provisional. It returns the sequence id for the OK.
func settleClientAuth(h *mywire.Hello, offered string, scramble []byte) (byte, error) {
	seq := h.Seq + 1
	r := h.Response
	if r.Caps&mywire.CapPluginAuth == 0 || r.AuthPlugin == "" || r.AuthPlugin == offered {
		return seq, nil
	}
	plugin := r.AuthPlugin
	if !clientPlugins[plugin] {
		plugin = offered
	}
	data := append(append([]byte(nil), scramble...), 0)
	if plugin == "client_ed25519" {
		// MariaDB's ed25519 signs a 32-byte nonce and takes nothing else.
		data = append(append([]byte(nil), scramble...), scramble[:12]...)
	}
	_, next, err := mywire.AuthSwitch(h.Conn, seq, plugin, data)
	return next, err
}

// clientError turns a client's broken handshake into what it is told:
// the ERR a server would answer, at the position the codec names, in the
// proxy's words where the proxy has more to say than the protocol.
// Anything else (a client gone, a timeout) gives nil: nobody is listening
// for an answer.
func clientError(err error) (*failure.Failure, position) {
	var pe *mywire.ProtocolError
	if !errors.As(err, &pe) {
		return nil, position{}
	}
	f := &failure.Failure{Reason: failure.Protocol, Code: failure.Code{Errno: pe.Code}, Cause: pe.Message, Err: pe.Err}
	if errors.Is(err, mywire.ErrTLSNotOffered) {
		f.Err = nil
		f.Cause = "the client asked for TLS, which this listener does not offer"
		f.Fix = "connect with TLS off (MySQL's client: --ssl-mode=DISABLED; MariaDB's: --skip-ssl; go-sql-driver: tls=false); the proxy's own hop to RDS is always TLS"
	}
	return f, position{seq: pe.Seq, greeted: true}
}
