package postgres

import (
	"bytes"
	"strings"
	"testing"

	"github.com/rds-iam-proxy/rds-iam-proxy/wire/pgwire"
)

func TestCancelMap(t *testing.T) {
	m := newCancelMap()
	up := Upstream{Host: "db", Port: 5432}
	upKey := pgwire.CancelKey{PID: 4242, Secret: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	k, forget, err := m.register(up, upKey)
	if err != nil {
		t.Fatal(err)
	}
	if k.PID == 0 || k.PID > 0x7fffffff || len(k.Secret) != 4 {
		t.Fatalf("client key %+v: want a positive pid and a 4-byte secret", k)
	}
	if k.PID == upKey.PID {
		t.Fatal("client key reuses the upstream pid")
	}
	got, ok := m.lookup(k)
	if !ok || got.key.PID != 4242 || !bytes.Equal(got.key.Secret, upKey.Secret) || got.upstream.Host != "db" {
		t.Fatalf("lookup %+v %v", got, ok)
	}
	wrong := pgwire.CancelKey{PID: k.PID, Secret: []byte{k.Secret[0] ^ 1, k.Secret[1], k.Secret[2], k.Secret[3]}}
	if _, ok := m.lookup(wrong); ok {
		t.Fatal("wrong secret accepted")
	}
	if _, ok := m.lookup(pgwire.CancelKey{PID: k.PID, Secret: nil}); ok {
		t.Fatal("empty secret accepted")
	}
	forget()
	if _, ok := m.lookup(k); ok {
		t.Fatal("key still known after the connection ended")
	}
	// Many keys stay distinct.
	seen := map[uint32]bool{}
	for range 1000 {
		k, _, err := m.register(up, upKey)
		if err != nil || seen[k.PID] {
			t.Fatalf("duplicate or error: %v", err)
		}
		seen[k.PID] = true
	}
}

// TestInvalidPGServiceSaysSo: the one PG* variable that cannot be pinned
// fails at start with a message that points at the environment.
func TestInvalidPGServiceSaysSo(t *testing.T) {
	t.Setenv("PGSERVICE", "no-such-service")
	_, err := NewDialer(Upstream{Host: "db", Port: 5432})
	if err == nil || !strings.Contains(err.Error(), "PG* variable in the proxy's environment") {
		t.Fatalf("error %v", err)
	}
}
