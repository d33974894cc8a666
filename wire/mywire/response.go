package mywire

import (
	"errors"
	"fmt"
)

// sslRequestLen is the payload length of an SSLRequest: the fixed head of a
// HandshakeResponse41, sent alone before the TLS handshake.
const sslRequestLen = 32

// HandshakeResponse is the client's answer to the greeting
// (Protocol::HandshakeResponse41).
type HandshakeResponse struct {
	Caps       uint32
	ExtCaps    uint32 // MariaDB, when hasExtCaps(Caps)
	MaxPacket  uint32
	Charset    byte
	User       string
	AuthData   []byte
	Database   string // only with CapConnectWithDB
	AuthPlugin string // only with CapPluginAuth
	// Attrs is the connection attributes block (key/value lenenc strings)
	// without its total length; forwarded upstream unchanged.
	Attrs []byte
}

// IsSSLRequest tells an SSLRequest from a full response, which is always
// longer (it holds at least the user's NUL and the auth data's length).
func IsSSLRequest(p []byte) bool { return len(p) == sslRequestLen }

// ParseResponse decodes a HandshakeResponse41 payload.
func ParseResponse(p []byte) (*HandshakeResponse, error) {
	r := &reader{b: p}
	h := &HandshakeResponse{Caps: r.uint32()}
	if r.err == nil && h.Caps&CapProtocol41 == 0 {
		return nil, errors.New("the client speaks the pre-4.1 protocol, which is not supported: use a current MySQL or MariaDB client")
	}
	h.MaxPacket = r.uint32()
	h.Charset = r.byte1()
	r.bytes(19)
	ext := r.uint32()
	if hasExtCaps(h.Caps) {
		h.ExtCaps = ext
	}
	h.User = r.cstring(false)
	switch {
	case h.Caps&CapPluginAuthLenenc != 0:
		h.AuthData = r.lenencBytes()
	case h.Caps&CapSecureConnection != 0:
		h.AuthData = r.bytes(int(r.byte1()))
	default:
		h.AuthData = []byte(r.cstring(false))
	}
	if h.Caps&CapConnectWithDB != 0 {
		h.Database = r.cstring(true)
	}
	if h.Caps&CapPluginAuth != 0 {
		h.AuthPlugin = r.cstring(true)
	}
	if h.Caps&CapConnectAttrs != 0 && len(r.b) > 0 {
		h.Attrs = r.lenencBytes()
	}
	// MySQL's zstd level byte may follow; compression is never offered,
	// so anything left over is ignored as servers do.
	if r.err != nil {
		return nil, fmt.Errorf("client handshake response: %w", r.err)
	}
	return h, nil
}

// marshalHead encodes the fixed head shared by SSLRequest and the response.
func (h *HandshakeResponse) marshalHead(b []byte) []byte {
	b = appendUint32(b, h.Caps)
	b = appendUint32(b, h.MaxPacket)
	b = append(b, h.Charset)
	b = append(b, make([]byte, 19)...)
	if hasExtCaps(h.Caps) {
		return appendUint32(b, h.ExtCaps)
	}
	return append(b, 0, 0, 0, 0)
}

// MarshalSSLRequest encodes the SSLRequest that precedes h over TLS.
func (h *HandshakeResponse) MarshalSSLRequest() []byte {
	return h.marshalHead(make([]byte, 0, sslRequestLen))
}

// Marshal encodes h. The flags in h.Caps decide which fields are written.
func (h *HandshakeResponse) Marshal() ([]byte, error) {
	b := h.marshalHead(make([]byte, 0, 128+len(h.AuthData)+len(h.Attrs)))
	b = appendCString(b, h.User)
	switch {
	case h.Caps&CapPluginAuthLenenc != 0:
		b = appendLenenc(b, uint64(len(h.AuthData)))
		b = append(b, h.AuthData...)
	case h.Caps&CapSecureConnection != 0:
		if len(h.AuthData) > 255 {
			return nil, fmt.Errorf("auth data of %d bytes needs CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA, which the server does not offer", len(h.AuthData))
		}
		b = append(b, byte(len(h.AuthData)))
		b = append(b, h.AuthData...)
	default:
		b = appendCString(b, string(h.AuthData))
	}
	if h.Caps&CapConnectWithDB != 0 {
		b = appendCString(b, h.Database)
	}
	if h.Caps&CapPluginAuth != 0 {
		b = appendCString(b, h.AuthPlugin)
	}
	if h.Caps&CapConnectAttrs != 0 {
		b = appendLenenc(b, uint64(len(h.Attrs)))
		b = append(b, h.Attrs...)
	}
	return b, nil
}
