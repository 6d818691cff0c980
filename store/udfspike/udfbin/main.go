// Command udfbin is a throwaway executable UDF for the issue-16 spike (see ../udfspike_test.go).
// It reads rows of (ts Array(UInt64), mask Array(UInt64)) from stdin and writes one value per row:
// a String "n=<len> max=<max mask bits>" -- a stand-in for Waymark's matcher.
//
//	udfbin rowbinary        RowBinary in, RowBinary String out (executable: runs to EOF)
//	udfbin rowbinary-pool   as above, flushing whenever its input runs dry (executable_pool, no chunk header)
//	udfbin rowbinary-chunk  as above with send_chunk_header: "N\n" then N rows; flush after each chunk
//	udfbin tsv              TabSeparated in ([1,2,3]\t[4,5]), TabSeparated out, flush when input runs dry
package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"os"
	"strconv"
)

func main() {
	mode := "rowbinary"
	if len(os.Args) > 1 {
		mode = os.Args[1]
	}
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriterSize(os.Stdout, 1<<16)
	defer out.Flush()
	var err error
	switch mode {
	case "rowbinary", "rowbinary-pool":
		err = rowBinary(in, out, -1, mode == "rowbinary-pool")
	case "rowbinary-chunk":
		for {
			line, rerr := in.ReadString('\n')
			if rerr == io.EOF && line == "" {
				return
			}
			if rerr != nil {
				err = rerr
				break
			}
			n, perr := strconv.Atoi(line[:len(line)-1])
			if perr != nil {
				err = perr
				break
			}
			if err = rowBinary(in, out, n, false); err != nil {
				break
			}
			if err = out.Flush(); err != nil {
				break
			}
		}
	case "tsv":
		err = tsv(in, out)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil && err != io.EOF {
		fmt.Fprintln(os.Stderr, "udfbin:", err)
		os.Exit(1)
	}
}

var ts, masks []uint64

// rowBinary reads n rows (n < 0: until EOF) of two Array(UInt64) and writes a String for each.
func rowBinary(in *bufio.Reader, out *bufio.Writer, n int, flushWhenDry bool) error {
	var buf [binary.MaxVarintLen64]byte
	for i := 0; n < 0 || i < n; i++ {
		if flushWhenDry && in.Buffered() == 0 {
			if err := out.Flush(); err != nil {
				return err
			}
		}
		var err error
		if ts, err = readArray(in, ts[:0]); err != nil {
			if err == io.EOF && n < 0 {
				return nil
			}
			return err
		}
		if masks, err = readArray(in, masks[:0]); err != nil {
			return err
		}
		s := result(ts, masks)
		out.Write(buf[:binary.PutUvarint(buf[:], uint64(len(s)))])
		out.WriteString(s)
	}
	return nil
}

func readArray(in *bufio.Reader, a []uint64) ([]uint64, error) {
	n, err := binary.ReadUvarint(in)
	if err != nil {
		return a, err
	}
	var b [8]byte
	for range n {
		if _, err := io.ReadFull(in, b[:]); err != nil {
			return a, err
		}
		a = append(a, binary.LittleEndian.Uint64(b[:]))
	}
	return a, nil
}

func result(ts, masks []uint64) string {
	m := 0
	for _, x := range masks {
		m = max(m, bits.Len64(x))
	}
	return "n=" + strconv.Itoa(len(ts)) + " max=" + strconv.Itoa(m)
}

// tsv reads lines "[t1,t2]\t[m1,m2]" and writes one result line each.
func tsv(in *bufio.Reader, out *bufio.Writer) error {
	for {
		if in.Buffered() == 0 {
			if err := out.Flush(); err != nil {
				return err
			}
		}
		line, err := in.ReadSlice('\n')
		if err == bufio.ErrBufferFull { // a long line: read the rest
			long := append([]byte(nil), line...)
			rest, rerr := in.ReadBytes('\n')
			line, err = append(long, rest...), rerr
		}
		if err != nil {
			return err
		}
		ts, masks = ts[:0], masks[:0]
		cur, field := &ts, 0
		var v uint64
		digits := false
		for _, c := range line {
			switch {
			case c >= '0' && c <= '9':
				v, digits = v*10+uint64(c-'0'), true
			case c == ',' || c == ']':
				if digits {
					*cur = append(*cur, v)
				}
				v, digits = 0, false
			case c == '\t':
				field++
				cur = &masks
			}
		}
		out.WriteString(result(ts, masks))
		out.WriteByte('\n')
	}
}
