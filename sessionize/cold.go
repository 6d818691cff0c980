package sessionize

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"slices"
)

// A customer the sessionizer holds but no recent Push changed is kept cold: encoded into one
// byte slice about a third of its decoded size (points as deltas and varints, about 24 bytes
// instead of 56; sessions about 30 instead of 64; no per-customer struct or slice headers),
// and decoded when their next event comes. Nothing is lost: a cold customer decodes to exactly
// the customer that was encoded, so sessions, duplicates and stage counts are the same as if it
// had stayed decoded. It is what lets a sessionizer hold a large shop's customers (a month of
// them, most inactive at any time) without evicting them to ClickHouse and restoring them from
// there, which costs a query per batch.

// defaultHotCustomers is how many customers are held decoded at most: the ones with the newest
// events. A live shop's customers active within the last minutes fit many times over.
const defaultHotCustomers = 1 << 16

// cool encodes the held customers with the oldest newest event once more than hotCap are
// decoded, down to three quarters of hotCap (so the sort that picks them runs once per quarter
// of hotCap customers warmed, not with every Push). Customers still to be cut (restored since the
// last Push) stay decoded.
func (s *Sessionizer) cool() {
	if len(s.customers) <= s.hotCap {
		return
	}
	type aged struct {
		key    string
		latest int64
	}
	all := make([]aged, 0, len(s.customers))
	for k, c := range s.customers {
		if !c.dirty {
			all = append(all, aged{k, c.latest})
		}
	}
	slices.SortFunc(all, func(a, b aged) int { return cmp.Compare(a.latest, b.latest) })
	n := min(len(all), len(s.customers)-s.hotCap+s.hotCap/4)
	for _, a := range all[:n] {
		c := s.customers[a.key]
		s.cold[a.key] = encodeCustomer(c, s.intern(c.firstChannel))
		delete(s.customers, a.key)
	}
}

// warm returns the cold customer key decoded, and holds it decoded again; nil when key is not
// cold.
func (s *Sessionizer) warm(key string) *customer {
	data, ok := s.cold[key]
	if !ok {
		return nil
	}
	c := s.decodeCold(key, data)
	delete(s.cold, key)
	s.customers[key] = c
	return c
}

// decodeCold decodes a cold customer. Only encodeCustomer writes them, so a fault is a bug in
// this file, never input: it panics (a Runner recovers, forgets and restores from the store).
func (s *Sessionizer) decodeCold(key string, data []byte) *customer {
	c, err := decodeCustomer(data, s.strs)
	if err != nil {
		panic(fmt.Sprintf("sessionize: cold customer %q: %v", key, err))
	}
	return c
}

// coldLatest reads a cold customer's newest event time (ms) without decoding the rest.
func coldLatest(data []byte) int64 {
	v, _ := binary.Varint(data)
	return v
}

// encodeCustomer encodes a sorted customer that has no points left to cut (not dirty);
// channel is the string-table index of its first channel. The layout, all integers varints
// (signed ones zigzag) unless said otherwise:
//
//	latest, reached, channel, byUser
//	len(points), then per point: us (its time, unix µs) and seq as deltas from the point before, id (8 bytes little
//	  endian), payload (4 bytes little endian), rules, touch, channel, campaign, session
//	len(sessions), then per session: startUs as a delta from the session before, endUs-startUs,
//	  startSeq, version, events, entry, exit, channel, campaign, reason, person, stages
func encodeCustomer(c *customer, channel uint32) []byte {
	b := make([]byte, 0, 16+len(c.points)*28+len(c.sessions)*32)
	b = binary.AppendVarint(b, c.latest)
	b = binary.AppendUvarint(b, c.reached)
	b = binary.AppendUvarint(b, uint64(channel))
	b = binary.AppendUvarint(b, boolByte(c.byUser))
	b = binary.AppendUvarint(b, uint64(len(c.points)))
	var us, seq int64
	for _, p := range c.points {
		b = binary.AppendVarint(b, p.us-us)
		b = binary.AppendVarint(b, p.seq-seq)
		us, seq = p.us, p.seq
		b = binary.LittleEndian.AppendUint64(b, p.id)
		b = binary.LittleEndian.AppendUint32(b, p.payload)
		for _, v := range [...]uint64{p.rules, uint64(p.touch), uint64(p.channel), uint64(p.campaign), uint64(p.session)} {
			b = binary.AppendUvarint(b, v)
		}
	}
	b = binary.AppendUvarint(b, uint64(len(c.sessions)))
	var start int64
	for _, ss := range c.sessions {
		b = binary.AppendVarint(b, ss.startUs-start)
		b = binary.AppendVarint(b, ss.endUs-ss.startUs)
		start = ss.startUs
		b = binary.AppendVarint(b, ss.startSeq)
		for _, v := range [...]uint64{ss.version, uint64(ss.events), uint64(ss.entry), uint64(ss.exit), uint64(ss.channel),
			uint64(ss.campaign), uint64(ss.reason), uint64(ss.person), ss.stages} {
			b = binary.AppendUvarint(b, v)
		}
	}
	return slices.Clip(b)
}

// coldByUser returns the byUser of a customer encodeCustomer encoded, reading only the fields
// before it.
func coldByUser(data []byte) bool {
	d := decoder{b: data}
	d.varint()
	d.uvarint()
	d.uvarint()
	return d.uvarint() == 1
}

func boolByte(v bool) uint64 {
	if v {
		return 1
	}
	return 0
}

// decodeCustomer decodes what encodeCustomer wrote; strs resolves the first channel. It rebuilds
// the ids index of a customer with more than idIndexFrom points.
func decodeCustomer(data []byte, strs []string) (*customer, error) {
	d := decoder{b: data}
	c := &customer{latest: d.varint(), reached: d.uvarint()}
	channel := d.uvarint()
	c.byUser = d.uvarint() == 1
	if d.err == nil && channel >= uint64(len(strs)) {
		return nil, fmt.Errorf("channel %d beyond the string table (%d)", channel, len(strs))
	}
	if d.err == nil {
		c.firstChannel = strs[channel]
	}
	n := d.count(13) // at least 13 bytes a point
	c.points = make([]point, n)
	var us, seq int64
	for i := range c.points {
		us += d.varint()
		seq += d.varint()
		p := &c.points[i]
		p.us, p.seq, p.id, p.payload = us, seq, d.uint64(), d.fixed32()
		p.rules, p.touch, p.channel, p.campaign, p.session = d.uvarint(), d.uint32(), d.uint32(), d.uint32(), d.uint32()
	}
	c.sorted = len(c.points)
	n = d.count(12) // at least 12 bytes a session
	c.sessions = make([]storedSession, n)
	var start int64
	for i := range c.sessions {
		ss := &c.sessions[i]
		start += d.varint()
		ss.startUs, ss.endUs = start, start+d.varint()
		ss.startSeq = d.varint()
		ss.version, ss.events = d.uvarint(), d.uint32()
		ss.entry, ss.exit, ss.channel, ss.campaign, ss.reason, ss.person = d.uint32(), d.uint32(), d.uint32(), d.uint32(), d.uint32(), d.uint32()
		ss.stages = d.uvarint()
	}
	switch {
	case d.err != nil:
		return nil, d.err
	case len(d.b) > 0:
		return nil, fmt.Errorf("%d bytes after the customer", len(d.b))
	}
	if len(c.points) > idIndexFrom {
		c.indexIDs()
	}
	return c, nil
}

// decoder reads varints from b; after the first fault it reads zeros and keeps the fault in err.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("a varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail("a varint")
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint32() uint32 {
	v := d.uvarint()
	if v > 1<<32-1 {
		d.fail("a 32-bit value")
		return 0
	}
	return uint32(v)
}

func (d *decoder) fixed32() uint32 {
	if len(d.b) < 4 {
		d.fail("4 bytes")
		return 0
	}
	v := binary.LittleEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *decoder) uint64() uint64 {
	if len(d.b) < 8 {
		d.fail("8 bytes")
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// count reads a length whose items take at least size bytes each, refusing one longer than
// what is left could hold.
func (d *decoder) count(size int) int {
	v := d.uvarint()
	if v > uint64(len(d.b)/size) {
		d.fail("a length within the data")
		return 0
	}
	return int(v)
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("truncated or corrupt: want %s, %d bytes left", what, len(d.b))
	}
	d.b = nil
}
