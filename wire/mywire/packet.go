package mywire

import (
	"errors"
	"fmt"
	"io"
)

// MaxPayload is the largest payload one packet frame carries; longer
// payloads continue in further frames. Handshake packets never get near it.
const MaxPayload = 1<<24 - 1

// Limits on handshake packets. A greeting is under 200 bytes in practice;
// a client's answer holds the user, auth data, database and connection
// attributes (servers cap attributes at 64 KiB); a login's result is an
// OK (with session state) or an ERR.
const (
	GreetingLimit = 4 << 10
	ResponseLimit = 80 << 10
	ResultLimit   = 1 << 20
)

// PacketTooLargeError is a handshake packet over its limit.
type PacketTooLargeError struct{ Len, Limit int }

func (e *PacketTooLargeError) Error() string {
	return fmt.Sprintf("packet of %d bytes is over the handshake limit of %d", e.Len, e.Limit)
}

// ReadPacket reads one packet frame whose payload is at most limit bytes.
// It reads exactly the frame, never ahead, so a TLS upgrade can follow. A
// frame cut short is io.ErrUnexpectedEOF.
func ReadPacket(r io.Reader, limit int) (seq byte, payload []byte, err error) {
	var h [4]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(h[0]) | int(h[1])<<8 | int(h[2])<<16
	if n > limit {
		return h[3], nil, &PacketTooLargeError{Len: n, Limit: limit}
	}
	payload = make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return 0, nil, err
	}
	return h[3], payload, nil
}

// WritePacket writes payload (under 16 MiB) as one frame with sequence id
// seq, in one write.
func WritePacket(w io.Writer, seq byte, payload []byte) error {
	if len(payload) >= MaxPayload {
		return fmt.Errorf("handshake packet of %d bytes is too large", len(payload))
	}
	buf := make([]byte, 4, 4+len(payload))
	buf[0], buf[1], buf[2], buf[3] = byte(len(payload)), byte(len(payload)>>8), byte(len(payload)>>16), seq
	_, err := w.Write(append(buf, payload...))
	return err
}
