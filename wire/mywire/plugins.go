package mywire

import "errors"

// Auth plugins a login can answer.
const (
	PluginClearPassword  = "mysql_clear_password"  // the password in clear: only over TLS
	PluginNativePassword = "mysql_native_password" // SHA1 scramble
	PluginCachingSHA2    = "caching_sha2_password" // MySQL 8's default: SHA256 scramble, then the password over TLS when the server asks
)

// authData answers plugin's challenge (scramble) with password. secure
// says the connection is TLS, which a password in clear needs.
func authData(plugin string, scramble []byte, password string, secure bool) ([]byte, error) {
	switch plugin {
	case PluginClearPassword:
		if !secure {
			return nil, errors.New("refusing to send a password in clear without TLS (mysql_clear_password)")
		}
		return append([]byte(password), 0), nil
	case PluginNativePassword:
		return scrambleNative(scramble, password), nil
	case PluginCachingSHA2:
		return scrambleSHA256(scramble, password), nil
	}
	return nil, &UnsupportedPluginError{Plugin: plugin}
}
