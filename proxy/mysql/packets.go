package mysql

// packets follows MySQL's framing over a byte stream at the level of
// logical packets: a payload of 0xffffff bytes continues in the next
// packet, and only the whole is one packet. For each it keeps the first
// headLen bytes, all a tracker reads (a command byte, an OK's status),
// so it holds no more than that whatever the packets' size.
type packets struct {
	hdr   [4]byte
	hdrN  int // header bytes of the current physical packet seen so far
	left  int // payload bytes of the current physical packet still to come
	more  bool
	seq   byte // the sequence id of the logical packet's first physical one
	head  [headLen]byte
	headN int
	size  int // the logical packet's payload so far
	start int // where the logical packet started in this chunk (-1: before)
}

// headLen covers every field a tracker reads: an OK's header byte, two
// length-encoded integers (9 bytes each at most) and the status.
const headLen = 32

// maxPayload is a physical packet's largest payload: one this size is
// continued by the next.
const maxPayload = 0xffffff

// between says the stream is at a logical packet boundary.
func (f *packets) between() bool { return f.hdrN == 0 && f.left == 0 && !f.more }

// feed follows p and calls done at the end of each logical packet with
// its first bytes, its size and where it started and ended in p (start
// -1: in an earlier chunk).
func (f *packets) feed(p []byte, done func(seq byte, head []byte, size, start, end int)) {
	f.start = -1
	i := 0
	for i < len(p) {
		if f.left > 0 {
			n := min(f.left, len(p)-i)
			f.headN += copy(f.head[f.headN:], p[i:i+n])
			f.left -= n
			i += n
			if f.left == 0 && !f.more {
				done(f.seq, f.head[:f.headN], f.size, f.start, i)
				f.start = -1
			}
			continue
		}
		if f.hdrN == 0 && !f.more {
			f.start = i
		}
		n := copy(f.hdr[f.hdrN:], p[i:])
		f.hdrN += n
		i += n
		if f.hdrN < len(f.hdr) {
			return
		}
		f.hdrN = 0
		size := int(f.hdr[0]) | int(f.hdr[1])<<8 | int(f.hdr[2])<<16
		if !f.more {
			f.seq, f.headN, f.size = f.hdr[3], 0, 0
		}
		f.size += size
		f.more = size == maxPayload
		f.left = size
		if size == 0 && !f.more {
			done(f.seq, f.head[:f.headN], f.size, f.start, i)
			f.start = -1
		}
	}
}
