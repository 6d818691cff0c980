package main

import (
	"bytes"
	"io"
	"strings"

	"github.com/mattn/go-runewidth"
)

// tablePadding is the least space between two columns of a table.
const tablePadding = 2

// columns lays out the commands' tables as text/tabwriter does with a padding of tablePadding,
// cells aligned right (table) or left (leftTable) in their columns (a cell ends with a tab, a line with a newline, the text after a line's last tab
// is no cell; consecutive lines that have a cell in a column form a block, as wide as its widest
// cell), but measures a cell by the columns a terminal gives it (go-runewidth, by grapheme
// cluster: a CJK character or an emoji takes two, a combining mark none), where tabwriter counts
// code points: event names such as 商品浏览 or "Café ☕" pushed the columns after them out of line.
// Values come through label, so a cell holds no tab or newline of its own.
type columns struct {
	out   io.Writer
	buf   bytes.Buffer
	right bool
}

// table returns a columns writing to w, its cells aligned right (numbers line up); Flush writes
// what was written so far.
func table(w io.Writer) *columns { return &columns{out: w, right: true} }

// leftTable returns a columns writing to w, its cells aligned left.
func leftTable(w io.Writer) *columns { return &columns{out: w} }

// Write buffers p until Flush. It never fails.
func (c *columns) Write(p []byte) (int, error) { return c.buf.Write(p) }

// Flush lays out and writes the buffered text, and empties the buffer.
func (c *columns) Flush() error {
	text := c.buf.String()
	c.buf.Reset()
	if text == "" {
		return nil
	}
	// Each line's cells; the last is the text after its last tab (maybe empty). A last line
	// without a newline is laid out too, and written without one.
	unended := !strings.HasSuffix(text, "\n")
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	cells := make([][]string, len(lines))
	for i, l := range lines {
		cells[i] = strings.Split(l, "\t")
	}
	var b strings.Builder
	c.layOut(&b, cells, nil)
	out := b.String()
	if unended {
		out = strings.TrimSuffix(out, "\n")
	}
	_, err := io.WriteString(c.out, out)
	return err
}

// layOut writes lines, given the widths of the columns to their left, as text/tabwriter's
// format does: each run of lines with a cell in the next column is laid out with that column's
// width, the lines between runs with the widths given.
func (c *columns) layOut(b *strings.Builder, lines [][]string, widths []int) {
	col := len(widths)
	start := 0
	for i := 0; i < len(lines); {
		if col >= len(lines[i])-1 {
			i++
			continue
		}
		c.writeLines(b, lines[start:i], widths)
		j, width := i, 0
		for ; j < len(lines) && col < len(lines[j])-1; j++ {
			width = max(width, runewidth.StringWidth(lines[j][col])+tablePadding)
		}
		c.layOut(b, lines[i:j], append(widths, width))
		start, i = j, j
	}
	c.writeLines(b, lines[start:], widths)
}

// writeLines writes each line with its first len(widths) cells padded to their widths, the rest
// as they are.
func (c *columns) writeLines(b *strings.Builder, lines [][]string, widths []int) {
	for _, cells := range lines {
		for k, cell := range cells {
			if k >= len(widths) {
				b.WriteString(cell)
				continue
			}
			pad := strings.Repeat(" ", max(0, widths[k]-runewidth.StringWidth(cell)))
			if c.right {
				b.WriteString(pad + cell)
			} else {
				b.WriteString(cell + pad)
			}
		}
		b.WriteByte('\n')
	}
}
