package emulator

import (
	"bufio"
	"errors"
	"io"
	"net"
)

// shimLimit bounds what copyShimmed holds to look at: a packet with a
// longer payload is relayed as it comes, never buffered.
const shimLimit = 64 << 10

// comQuery is COM_QUERY's command byte.
const comQuery = 0x03

// copyShimmed copies a logged-in MySQL client's packets (src) to its
// backend session (dst), as copyHalf does, except that a COM_QUERY that
// opens a command (sequence id 0) and whose text shim recognises goes on
// as the statement shim returns instead. The backend answers it in the
// session's order and framing, so the client never sees a reply out of
// turn. Packets of more than shimLimit bytes, and every packet that
// continues a command (a long payload's further frames, LOAD DATA LOCAL
// contents, auth switch answers), pass untouched.
func copyShimmed(dst, src net.Conn, shim func(string) (string, bool)) halfEnd {
	r := bufio.NewReaderSize(src, 32<<10)
	buf := make([]byte, 32<<10)
	for {
		if _, err := io.ReadFull(r, buf[:4]); err != nil {
			return partial(dst, buf[:0], err)
		}
		size := int(buf[0]) | int(buf[1])<<8 | int(buf[2])<<16
		seq := buf[3]
		if seq == 0 && size > 1 && size <= shimLimit {
			payload := make([]byte, 4+size)
			copy(payload, buf[:4])
			if n, err := io.ReadFull(r, payload[4:]); err != nil {
				return partial(dst, payload[:4+n], err)
			}
			if payload[4] == comQuery {
				if q, ok := shim(string(payload[5:])); ok && len(q)+1 <= shimLimit {
					payload = append(packetHeader(len(q)+1, 0), comQuery)
					payload = append(payload, q...)
				}
			}
			if _, err := dst.Write(payload); err != nil {
				return dstFailed
			}
			continue
		}
		// Streamed: the header goes with the first chunk of the payload.
		head := 4
		for left := size; ; {
			k := min(left, len(buf)-head)
			n, err := io.ReadFull(r, buf[head:head+k])
			if err != nil {
				return partial(dst, buf[:head+n], err)
			}
			if head+n > 0 {
				if _, err := dst.Write(buf[:head+n]); err != nil {
					return dstFailed
				}
			}
			head, left = 0, left-n
			if left == 0 {
				break
			}
		}
	}
}

// packetHeader is a packet's 4-byte header for a payload of size bytes.
func packetHeader(size int, seq byte) []byte {
	return []byte{byte(size), byte(size >> 8), byte(size >> 16), seq}
}

// partial delivers what was read of a packet before src ended or failed
// (a byte relay would have) and says how the copy ended.
func partial(dst net.Conn, got []byte, err error) halfEnd {
	if len(got) > 0 {
		if _, werr := dst.Write(got); werr != nil {
			return dstFailed
		}
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return srcEnded
	}
	return srcFailed
}
