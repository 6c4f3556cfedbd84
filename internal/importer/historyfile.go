package importer

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/csv"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/commitflow/commitflow/internal/event"
)

// HistoryFile is a history CSV (see History) read from its file deal by
// deal, for exports too large to hold parsed in memory: History.Parse
// keeps ~650 bytes a row (a 1M-row Salesforce export, 180 MB, held 650 MB
// of events and 1.6 GB of the process's memory), a HistoryFile about 20
// bytes a row and each deal's id.
//
// Open reads the file twice: once for its digest and encoding, once to
// check every row and note where it starts and which deal it is of. Each
// reads a deal's rows again when it publishes them. Its rows and their
// events are those History.Parse makes of the same content; it publishes
// them in byDeal's order, but for the rows that change nothing, which
// stay among their deal's rows.
type HistoryFile struct {
	h      History
	f      io.ReaderAt
	size   int64
	closer io.Closer // the file Open opened
	digest [sha256.Size]byte
	cp     bool  // the text is Windows-1252
	base   int64 // where the header starts (after a byte-order mark)
	cells  int   // the header's
	col    map[string]int

	off     []int64 // each row's first byte from base, and the text's end
	line    []int32 // each row's first line
	deal    []int32 // each row's deal, from 0 in order of appearance; -1 for a refused row
	refused map[int32]error
	order   []int32 // the rows in publishing order

	mem Rows // the rows parsed in memory, when they are not read deal by deal
}

// Open checks and indexes the history CSV at path. The error is for the
// file as a whole, as Parse's is; a bad row is a refused Row. The
// HistoryFile must be closed.
func (h History) Open(path string) (*HistoryFile, error) {
	if err := h.checkCurrency(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	hf, err := h.Read(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	hf.closer = f
	return hf, nil
}

// Read checks and indexes the history CSV of size bytes that r reads, as
// Open does a file's.
func (h History) Read(r io.ReaderAt, size int64) (*HistoryFile, error) {
	if err := h.checkCurrency(); err != nil {
		return nil, err
	}
	hf := &HistoryFile{h: h, f: r, size: size, refused: map[int32]error{}}
	if err := hf.open(); err != nil {
		return nil, err
	}
	return hf, nil
}

// Close closes the file that Open opened.
func (hf *HistoryFile) Close() error {
	if hf.closer == nil {
		return nil
	}
	return hf.closer.Close()
}

// Digest is the SHA-256 digest of the file's content (see DigestKey).
func (hf *HistoryFile) Digest() [sha256.Size]byte { return hf.digest }

// Len is the number of rows.
func (hf *HistoryFile) Len() int {
	if hf.mem != nil {
		return len(hf.mem)
	}
	return len(hf.line)
}

// Refused returns the refused rows, in file order.
func (hf *HistoryFile) Refused() []Row {
	if hf.mem != nil {
		return hf.mem.Refused()
	}
	var out []Row
	for r, d := range hf.deal {
		if d < 0 {
			out = append(out, Row{Line: int(hf.line[r]), Err: hf.refused[int32(r)]})
		}
	}
	return out
}

// Each calls fn with every row, deal by deal: a deal's rows in file order
// where its first row is, a refused row where it is. It reads each deal's
// rows from the file again; an error reading them is returned.
func (hf *HistoryFile) Each(fn func(Row) error) error {
	if hf.mem != nil {
		return hf.mem.Each(fn)
	}
	var (
		rd    recordReader
		snaps []snapshot
		evs   [][]event.Event
		arena eventArena
	)
	for i := 0; i < len(hf.order); {
		r := hf.order[i]
		if hf.deal[r] < 0 {
			if err := fn(Row{Line: int(hf.line[r]), Err: hf.refused[r]}); err != nil {
				return err
			}
			i++
			continue
		}
		j := i + 1
		for j < len(hf.order) && hf.deal[hf.order[j]] == hf.deal[r] {
			j++
		}
		rows := hf.order[i:j]
		var err error
		if snaps, err = hf.read(&rd, rows, snaps[:0]); err != nil {
			return err
		}
		arena.free = arena.free[:0] // the last deal's events are published
		evs = slices.Grow(evs[:0], len(rows))[:len(rows)]
		clear(evs)
		hf.h.diff(snaps, func(s *snapshot, e []event.Event) { evs[s.row] = arena.copy(e) })
		for k, r := range rows {
			if err := fn(Row{Line: int(hf.line[r]), Events: evs[k]}); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// open reads the file's digest and encoding, then indexes its rows.
func (hf *HistoryFile) open() error {
	valid, hasBOM, err := hf.scan()
	if err != nil {
		return err
	}
	if hf.cp, err = is1252(hf.h.Encoding, valid); err != nil {
		return err
	}
	if hasBOM {
		hf.base = int64(len(bom))
	}
	if hf.cp && hf.h.Comma >= utf8.RuneSelf {
		// A delimiter of more than a byte in UTF-8 is one byte in the
		// file: csv cannot split the file's bytes, only its decoded text.
		data, err := io.ReadAll(io.NewSectionReader(hf.f, 0, hf.size))
		if err != nil {
			return err
		}
		hf.mem, err = hf.h.Parse(data)
		return err
	}
	return hf.index()
}

// scan reads the whole file for its digest, whether it is valid UTF-8 and
// whether it starts with a byte-order mark.
func (hf *HistoryFile) scan() (valid, hasBOM bool, err error) {
	d := sha256.New()
	r := io.NewSectionReader(hf.f, 0, hf.size)
	buf := make([]byte, min(1<<20, hf.size+utf8.UTFMax))
	valid = true
	p := 0 // bytes of a rune cut by the last read, at buf's start
	for first := true; ; first = false {
		n, err := io.ReadFull(r, buf[p:])
		last := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !last {
			return false, false, err
		}
		d.Write(buf[p : p+n])
		chunk := buf[:p+n]
		if first {
			hasBOM = bytes.HasPrefix(chunk, bom)
		}
		p = 0
		if valid {
			cut := len(chunk)
			if !last {
				cut = runeCut(chunk)
			}
			valid = utf8.Valid(chunk[:cut])
			p = copy(buf, chunk[cut:])
		}
		if last {
			d.Sum(hf.digest[:0])
			return valid, hasBOM, nil
		}
	}
}

// runeCut is where b's last rune starts if b ends before it does, else
// len(b).
func runeCut(b []byte) int {
	for i := len(b) - 1; i >= 0 && i > len(b)-utf8.UTFMax; i-- {
		if utf8.RuneStart(b[i]) {
			if !utf8.FullRune(b[i:]) {
				return i
			}
			break
		}
	}
	return len(b)
}

// newReader returns a csv.Reader of r as readCSV reads.
func (hf *HistoryFile) newReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	if hf.h.Comma != 0 {
		cr.Comma = hf.h.Comma
	}
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return cr
}

// text returns a record's cells as UTF-8, decoding them in place.
func (hf *HistoryFile) text(cells []string) []string {
	if hf.cp {
		for i, c := range cells {
			for j := 0; j < len(c); j++ {
				if c[j] >= utf8.RuneSelf {
					cells[i] = decode1252([]byte(c))
					break
				}
			}
		}
	}
	return cells
}

// index reads every row: a refused row's reason, where every row starts,
// which deal it is of; then refuses rows repeating an earlier row's id
// and lays out the publishing order.
func (hf *HistoryFile) index() error {
	cr := hf.newReader(bufio.NewReaderSize(io.NewSectionReader(hf.f, hf.base, hf.size-hf.base), int(min(1<<20, hf.size))))
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	header = hf.text(slices.Clone(header))
	if hf.col, err = hf.h.index(header); err != nil {
		return err
	}
	hf.cells = len(header)
	type rowID struct {
		hash uint64
		row  int32
	}
	var (
		deals = map[string]int32{}
		ids   []rowID
		seed  = maphash.MakeSeed()
	)
	for {
		off := cr.InputOffset()
		if len(hf.line) == math.MaxInt32 {
			return fmt.Errorf("more than %d rows", math.MaxInt32)
		}
		row := int32(len(hf.line))
		cells, err := cr.Read()
		if errors.Is(err, io.EOF) {
			hf.off = append(hf.off, off)
			break
		}
		line, d := 0, int32(-1)
		var s snapshot
		switch {
		case err != nil:
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return fmt.Errorf("csv: %w", err)
			}
			line, err = pe.StartLine, fmt.Errorf("csv: %w", pe.Err)
		case len(cells) != hf.cells:
			line, _ = cr.FieldPos(0)
			err = fmt.Errorf("%d fields, the header has %d", len(cells), hf.cells)
		default:
			line, _ = cr.FieldPos(0)
			s, err = hf.h.snapshot(hf.text(cells), hf.col)
		}
		if err != nil {
			hf.refused[row] = err
		} else {
			var ok bool
			if d, ok = deals[s.opp]; !ok {
				d = int32(len(deals))
				deals[strings.Clone(s.opp)] = d
			}
			if s.id != "" {
				ids = append(ids, rowID{maphash.String(seed, s.id), row})
			}
		}
		hf.off = append(hf.off, off)
		hf.line = append(hf.line, int32(min(line, math.MaxInt32)))
		hf.deal = append(hf.deal, d)
	}

	// Rows whose ids hash alike are read again: of those with the same id
	// the first is kept, the others refused as Parse refuses them.
	slices.SortFunc(ids, func(a, b rowID) int { return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.row, b.row)) })
	var rd recordReader
	for i := 0; i < len(ids); {
		j := i + 1
		for j < len(ids) && ids[j].hash == ids[i].hash {
			j++
		}
		if j-i > 1 {
			seen := map[string]int{}
			for _, x := range ids[i:j] {
				snaps, err := hf.read(&rd, []int32{x.row}, nil)
				if err != nil {
					return err
				}
				if err := repeated(seen, hf.h.Columns.RowID, "row", snaps[0].id); err != nil {
					hf.deal[x.row], hf.refused[x.row] = -1, err
					continue
				}
				seen[snaps[0].id] = snaps[0].line
			}
		}
		i = j
	}
	hf.order = publishOrder(hf.deal, len(deals))
	return nil
}

// publishOrder returns the rows of deal (each row's deal, from 0 to
// deals-1, -1 for none) in publishing order: a deal's rows together, in
// order, where its first row is; a row of none where it is.
func publishOrder(deal []int32, deals int) []int32 {
	group := make([]int32, len(deal)) // the group of each row
	first := make([]int32, deals)     // a deal's group, 0 for none yet
	var size []int32                  // rows per group
	for r, d := range deal {
		if d >= 0 && first[d] > 0 {
			group[r] = first[d] - 1
			size[first[d]-1]++
			continue
		}
		group[r] = int32(len(size))
		size = append(size, 1)
		if d >= 0 {
			first[d] = int32(len(size))
		}
	}
	at := make([]int32, len(size)) // the next place of each group's rows
	n := int32(0)
	for g, s := range size {
		at[g] = n
		n += s
	}
	order := make([]int32, len(deal))
	for r := range deal {
		order[at[group[r]]] = int32(r)
		at[group[r]]++
	}
	return order
}

// recordReader reads records back from the file, keeping its buffers
// from one read to the next.
type recordReader struct {
	buf []byte
	br  *bufio.Reader
}

// read appends the snapshots of rows (indexes of valid rows) to snaps,
// reading the rows from the file again; each snapshot's row is its
// index in rows.
func (hf *HistoryFile) read(rd *recordReader, rows []int32, snaps []snapshot) ([]snapshot, error) {
	buf := rd.buf[:0]
	for _, r := range rows {
		a, b := hf.off[r], hf.off[r+1]
		n := len(buf)
		buf = slices.Grow(buf, int(b-a)+1)[:n+int(b-a)]
		if m, err := hf.f.ReadAt(buf[n:], hf.base+a); m < len(buf)-n {
			return nil, fmt.Errorf("line %d: %w", hf.line[r], cmp.Or(err, io.ErrUnexpectedEOF))
		}
		if len(buf) == n || buf[len(buf)-1] != '\n' {
			buf = append(buf, '\n') // the last record, without its own
		}
	}
	rd.buf = buf
	if rd.br == nil {
		rd.br = bufio.NewReader(bytes.NewReader(buf))
	} else {
		rd.br.Reset(bytes.NewReader(buf))
	}
	cr := hf.newReader(rd.br) // csv.NewReader keeps rd.br: it is a bufio.Reader
	for k, r := range rows {
		cells, err := cr.Read()
		if err == nil && len(cells) != hf.cells {
			err = fmt.Errorf("%d fields, the header has %d", len(cells), hf.cells)
		}
		var s snapshot
		if err == nil {
			s, err = hf.h.snapshot(hf.text(cells), hf.col)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: read again, the row is not what it was (was the file changed?): %w", hf.line[r], err)
		}
		if s.id == "" {
			s.id = contentID(cells)
		}
		s.row, s.line = k, int(hf.line[r])
		snaps = append(snaps, s)
	}
	return snaps, nil
}
