package mywire

import (
	"crypto/sha1"
	"crypto/sha256"
)

// scrambleNative answers mysql_native_password:
// SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
func scrambleNative(scramble []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha1.Sum([]byte(password))
	h2 := sha1.Sum(h1[:])
	h := sha1.New()
	h.Write(scramble[:min(20, len(scramble))])
	h.Write(h2[:])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= h1[i]
	}
	return out
}

// scrambleSHA256 answers caching_sha2_password's fast path:
// SHA256(password) XOR SHA256(SHA256(SHA256(password)) + scramble).
func scrambleSHA256(scramble []byte, password string) []byte {
	if password == "" {
		return nil
	}
	h1 := sha256.Sum256([]byte(password))
	h2 := sha256.Sum256(h1[:])
	h := sha256.New()
	h.Write(h2[:])
	h.Write(scramble[:min(20, len(scramble))])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= h1[i]
	}
	return out
}
