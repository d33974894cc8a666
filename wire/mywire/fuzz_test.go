package mywire

import (
	"bytes"
	"testing"
)

// FuzzParseGreeting: any bytes parse or fail cleanly; a parsed greeting
// with a full scramble survives a round trip.
func FuzzParseGreeting(f *testing.F) {
	f.Add(sampleGreeting().Marshal())
	mysql8 := sampleGreeting()
	mysql8.Caps |= CapLongPassword
	mysql8.ServerVersion = "8.0.39"
	mysql8.AuthPlugin = PluginCachingSHA2
	f.Add(mysql8.Marshal())
	f.Add(MarshalErr(1040, "Too many connections", false))
	f.Add([]byte{10, 0})
	f.Fuzz(func(t *testing.T, p []byte) {
		g, err := ParseGreeting(p)
		if err != nil || len(g.Scramble) != 20 || bytes.IndexByte(g.Scramble, 0) >= 0 {
			return
		}
		if bytes.IndexByte([]byte(g.ServerVersion), 0) >= 0 || bytes.IndexByte([]byte(g.AuthPlugin), 0) >= 0 {
			return
		}
		back, err := ParseGreeting(g.Marshal())
		if err != nil {
			t.Fatalf("re-parse of a marshalled greeting: %v", err)
		}
		if back.ServerVersion != g.ServerVersion || back.Caps != g.Caps || back.ExtCaps != g.ExtCaps ||
			!bytes.Equal(back.Scramble, g.Scramble) || back.ConnectionID != g.ConnectionID {
			t.Fatalf("round trip changed the greeting:\n got %+v\nwant %+v", back, g)
		}
	})
}

// FuzzParseResponse: any bytes parse or fail cleanly; a parsed response
// survives a round trip.
func FuzzParseResponse(f *testing.F) {
	r := &HandshakeResponse{
		Caps:     CapProtocol41 | CapSecureConnection | CapPluginAuth | CapPluginAuthLenenc | CapConnectWithDB | CapConnectAttrs,
		Charset:  45,
		User:     "app_user",
		AuthData: bytes.Repeat([]byte{1}, 20), Database: "appdb", AuthPlugin: PluginNativePassword,
		Attrs: []byte("\x04_pid\x0212"),
	}
	b, _ := r.Marshal()
	f.Add(b)
	r.Caps &^= CapPluginAuthLenenc | CapLongPassword
	b, _ = r.Marshal()
	f.Add(b)
	f.Add(r.MarshalSSLRequest())
	f.Fuzz(func(t *testing.T, p []byte) {
		h, err := ParseResponse(p)
		if err != nil {
			return
		}
		b, err := h.Marshal()
		if err != nil {
			return // e.g. long auth data without the lenenc flag
		}
		back, err := ParseResponse(b)
		if err != nil {
			t.Fatalf("re-parse of a marshalled response: %v", err)
		}
		if !responsesEqual(h, back) {
			t.Fatalf("round trip changed the response:\n got %+v\nwant %+v", back, h)
		}
	})
}
