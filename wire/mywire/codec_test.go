package mywire

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func sampleGreeting() *Greeting {
	return &Greeting{
		ServerVersion: "5.5.5-10.11.19-MariaDB-0+deb12u1",
		ConnectionID:  4711,
		Scramble:      []byte("abcdefghijklmnopqrst"),
		Caps: CapLongFlag | CapConnectWithDB | CapCompress | CapProtocol41 | CapSSL | CapTransactions |
			CapSecureConnection | CapMultiStatements | CapMultiResults | CapPluginAuth | CapConnectAttrs |
			CapPluginAuthLenenc | CapSessionTrack | CapDeprecateEOF, // bit 0 clear: MariaDB, ext caps follow
		ExtCaps:    1<<0 | 1<<4,
		Charset:    45,
		Status:     2,
		AuthPlugin: PluginNativePassword,
	}
}

func TestGreetingRoundTrip(t *testing.T) {
	g := sampleGreeting()
	back, err := ParseGreeting(g.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	if back.ServerVersion != g.ServerVersion || back.ConnectionID != g.ConnectionID || !bytes.Equal(back.Scramble, g.Scramble) ||
		back.Caps != g.Caps || back.ExtCaps != g.ExtCaps || back.Charset != g.Charset || back.Status != g.Status || back.AuthPlugin != g.AuthPlugin {
		t.Fatalf("round trip changed the greeting:\n got %+v\nwant %+v", back, g)
	}

	// A MySQL server sets CLIENT_MYSQL: the filler is not extended caps.
	g.Caps |= CapLongPassword
	back, err = ParseGreeting(g.Marshal())
	if err != nil || back.ExtCaps != 0 {
		t.Fatalf("MySQL greeting: ext caps %x, %v; want 0", back.ExtCaps, err)
	}
}

func TestGreetingThatIsAnError(t *testing.T) {
	_, err := ParseGreeting(MarshalErr(1040, "Too many connections", false))
	var se *ServerError
	if !errors.As(err, &se) || se.Code != 1040 || se.Message != "Too many connections" {
		t.Fatalf("got %v; want the server's 1040", err)
	}
}

func TestMirrorCaps(t *testing.T) {
	g := Mirror(sampleGreeting(), bytes.Repeat([]byte{7}, 20), PluginNativePassword, false)
	if g.Caps&(CapCompress|CapZstd|CapSSL) != 0 {
		t.Fatalf("caps %x offer compression or TLS to the client", g.Caps)
	}
	if g.Caps&CapDeprecateEOF == 0 || g.ExtCaps != sampleGreeting().ExtCaps || g.ConnectionID != 4711 {
		t.Fatalf("greeting not mirrored: %+v", g)
	}
	if g := Mirror(sampleGreeting(), g.Scramble, PluginNativePassword, true); g.Caps&CapSSL == 0 {
		t.Fatal("TLS not offered with a TLS front")
	}
}

func TestUpstreamCaps(t *testing.T) {
	server := sampleGreeting().Caps
	framing := CapDeprecateEOF | CapMultiStatements | CapMultiResults | CapSessionTrack | CapFoundRows
	cases := []struct {
		name         string
		client       uint32
		db           string
		attrs, tls   bool
		want, wantNo uint32
	}{
		{name: "framing follows the client (on)", client: CapProtocol41 | CapDeprecateEOF | CapMultiStatements, tls: true,
			want: CapDeprecateEOF | CapMultiStatements | CapSSL | CapPluginAuth | CapPluginAuthLenenc | CapSecureConnection, wantNo: CapMultiResults | CapSessionTrack | CapConnectWithDB | CapConnectAttrs},
		{name: "framing follows the client (off)", client: CapProtocol41, tls: true,
			wantNo: framing},
		{name: "only what the server has", client: CapProtocol41 | CapFoundRows | CapQueryAttributes, tls: true,
			wantNo: CapFoundRows | CapQueryAttributes},
		{name: "never compression", client: CapProtocol41 | CapCompress | CapZstd, tls: true, wantNo: CapCompress | CapZstd},
		{name: "database and attributes when there are some", client: CapProtocol41, db: "appdb", attrs: true, tls: true,
			want: CapConnectWithDB | CapConnectAttrs},
		{name: "the client's db flag without a db is dropped", client: CapProtocol41 | CapConnectWithDB, tls: true, wantNo: CapConnectWithDB},
		{name: "no TLS flag without TLS", client: CapProtocol41 | CapSSL, wantNo: CapSSL},
	}
	for _, tc := range cases {
		got := upstreamCaps(tc.client, server, tc.db, tc.attrs, tc.tls)
		if got&tc.want != tc.want || got&tc.wantNo != 0 {
			t.Errorf("%s: caps %x; want %x set and %x clear", tc.name, got, tc.want, tc.wantNo)
		}
	}
}

func TestResponseRoundTrip(t *testing.T) {
	token := strings.Repeat("t", 1200) + "\x00"
	r := &HandshakeResponse{
		Caps:    CapProtocol41 | CapSecureConnection | CapPluginAuth | CapPluginAuthLenenc | CapConnectWithDB | CapConnectAttrs | CapSSL,
		ExtCaps: 1 << 4, MaxPacket: 1 << 24, Charset: 45, User: "app_user", AuthData: []byte(token),
		Database: "appdb", AuthPlugin: PluginClearPassword, Attrs: []byte("\x04_pid\x0212"),
	}
	b, err := r.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseResponse(b)
	if err != nil {
		t.Fatal(err)
	}
	if !responsesEqual(r, back) {
		t.Fatalf("round trip changed the response:\n got %+v\nwant %+v", back, r)
	}
	if ssl := r.MarshalSSLRequest(); len(ssl) != sslRequestLen || !IsSSLRequest(ssl) || !bytes.Equal(ssl, b[:sslRequestLen]) {
		t.Fatalf("SSLRequest %x is not the response's head", ssl)
	}
	// Without the lenenc flag, long auth data cannot be sent.
	r.Caps &^= CapPluginAuthLenenc
	if _, err := r.Marshal(); err == nil {
		t.Fatal("a 1201-byte token was encoded with a one-byte length")
	}
}

func responsesEqual(a, b *HandshakeResponse) bool {
	return a.Caps == b.Caps && a.ExtCaps == b.ExtCaps && a.MaxPacket == b.MaxPacket && a.Charset == b.Charset &&
		a.User == b.User && bytes.Equal(a.AuthData, b.AuthData) && a.Database == b.Database &&
		a.AuthPlugin == b.AuthPlugin && bytes.Equal(a.Attrs, b.Attrs)
}

func TestLenenc(t *testing.T) {
	for _, v := range []uint64{0, 250, 251, 0xffff, 0x10000, 0xffffff, 0x1000000, 1 << 40} {
		r := &reader{b: appendLenenc(nil, v)}
		if got := r.lenenc(); got != v || r.err != nil || len(r.b) != 0 {
			t.Errorf("lenenc %d came back %d, %v", v, got, r.err)
		}
	}
	r := &reader{b: []byte{0xff}}
	if r.lenenc(); r.err == nil {
		t.Error("0xff prefix accepted")
	}
}

func TestReadPacketLimits(t *testing.T) {
	if _, _, err := ReadPacket(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0}), 100); !errors.As(err, new(*PacketTooLargeError)) {
		t.Fatalf("oversized frame: %v", err)
	}
	if _, _, err := ReadPacket(bytes.NewReader([]byte{10, 0, 0, 0, 1, 2}), 100); err == nil {
		t.Fatal("truncated frame accepted")
	}
	seq, p, err := ReadPacket(bytes.NewReader([]byte{2, 0, 0, 7, 1, 2}), 100)
	if err != nil || seq != 7 || !bytes.Equal(p, []byte{1, 2}) {
		t.Fatalf("frame: %d %v %v", seq, p, err)
	}
}
