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

// File is a CSV export read from its file deal by deal, for exports too
// large to hold parsed in memory: one row per change (History,
// FieldHistory), per deal (Deals, Opportunity, HubSpotDeals,
// PipedriveDeals) or per contact role (ContactRoles). Parse keeps ~650
// bytes a row of a history (a 1M-row Salesforce OpportunityHistory
// export, 180 MB, held 650 MB of events and 1.5 GiB of the process's
// memory), a File about 20 bytes a row and each deal's id.
//
// Opening a File reads it twice: once for its digest and encoding, once
// to check every row and note where it starts and which deal it is of.
// Each reads a deal's rows again when it publishes them. Its rows and
// their events are those Parse makes of the same content; it publishes
// them in byDeal's order, but for the rows that change nothing or are
// refused for what the rows before them say, which stay among their
// deal's rows.
type File struct {
	source
	format format
	cp     bool  // the text is Windows-1252
	base   int64 // where the header starts (after a byte-order mark)
	cells  int   // the header's

	off     []int64 // each row's first byte from base, and the text's end
	line    []int32 // each row's first line
	deal    []int32 // each row's deal, from 0 in order of appearance; -1 for a refused row
	refused map[int32]error
	order   []int32 // the rows in publishing order

	mem Rows // the rows parsed in memory, when they are not read deal by deal
}

// format is what a File needs of the format of its rows.
type format interface {
	// comma is the field separator (0 for ',') and encoding the text's
	// (see Decode).
	comma() rune
	encoding() string
	// parse parses the file in memory, as Parse does.
	parse(data []byte) (Rows, error)
	// header checks the header's cells.
	header(cells []string) error
	// check reads a record's cells: the deal it is of, the id no later
	// row may have (empty for none), or why the row is refused.
	check(cells []string) (deal, id string, err error)
	// repeats is the refusal of a row whose id is that of the row at
	// line first.
	repeats(id string, first int) error
	// rows makes the rows of one deal's records, in file order: their
	// events or why they are refused. The events are valid until the
	// next call. The error names the line of a record that check
	// refuses: the file changed since it was indexed.
	rows(recs []record) (Rows, error)
	// late says whether rows refuses rows that check did not.
	late() bool
}

// source is the file an import reads deal by deal.
type source struct {
	f      io.ReaderAt
	size   int64
	closer io.Closer // the file opened by its path
	digest [sha256.Size]byte
}

// openSource opens the file at path and gives it to read, closing it if
// read fails. What is not a regular file (a pipe, as from a shell's
// <(zcat export.csv.gz), or a device) cannot be read twice: it is read
// into memory whole first.
func openSource[T any](path string, read func(source) (T, error)) (T, error) {
	var zero T
	file, err := os.Open(path)
	if err != nil {
		return zero, err
	}
	fi, err := file.Stat()
	if err != nil {
		file.Close()
		return zero, err
	}
	src := source{f: file, size: fi.Size(), closer: file}
	if !fi.Mode().IsRegular() {
		data, err := io.ReadAll(file)
		if err != nil {
			file.Close()
			return zero, err
		}
		src.f, src.size = bytes.NewReader(data), int64(len(data))
	}
	v, err := read(src)
	if err != nil {
		file.Close()
		return zero, err
	}
	return v, nil
}

// Close closes the file opened by its path.
func (s *source) Close() error {
	if s.closer == nil {
		return nil
	}
	return s.closer.Close()
}

// Digest is the SHA-256 digest of the file's content (see DigestKey).
func (s *source) Digest() [sha256.Size]byte { return s.digest }

// readFile checks and indexes the CSV of src as a File of f.
func readFile(src source, f format) (*File, error) {
	df := &File{source: src, format: f, refused: map[int32]error{}}
	r, size := src.f, src.size
	valid, hasBOM, err := df.scan()
	if err != nil {
		return nil, err
	}
	if df.cp, err = is1252(f.encoding(), valid); err != nil {
		return nil, err
	}
	if hasBOM {
		df.base = int64(len(bom))
	}
	if df.cp && f.comma() >= utf8.RuneSelf {
		// A delimiter of more than a byte in UTF-8 is one byte in the
		// file: csv cannot split the file's bytes, only its decoded text.
		data, err := io.ReadAll(io.NewSectionReader(r, 0, size))
		if err != nil {
			return nil, err
		}
		if df.mem, err = f.parse(data); err != nil {
			return nil, err
		}
		return df, nil
	}
	if err := df.index(); err != nil {
		return nil, err
	}
	return df, nil
}

// Len is the number of rows.
func (df *File) Len() int {
	if df.mem != nil {
		return len(df.mem)
	}
	return len(df.line)
}

// Refused returns the refused rows, in file order. Of a format that
// refuses rows for what the rows before them say (FieldHistory), it reads
// every deal's rows again to know.
func (df *File) Refused() ([]Row, error) {
	if df.mem != nil {
		return df.mem.Refused()
	}
	var out []Row
	if !df.format.late() {
		for r, d := range df.deal {
			if d < 0 {
				out = append(out, Row{Line: int(df.line[r]), Err: df.refused[int32(r)]})
			}
		}
		return out, nil
	}
	err := df.Each(func(r Row) error {
		if r.Err != nil {
			out = append(out, r)
		}
		return nil
	})
	slices.SortStableFunc(out, func(a, b Row) int { return cmp.Compare(a.Line, b.Line) })
	return out, err
}

// Each calls fn with every row, deal by deal: a deal's rows in file order
// where its first row is, a row refused on its own where it is. It reads
// each deal's rows from the file again; an error reading them is
// returned.
func (df *File) Each(fn func(Row) error) error {
	if df.mem != nil {
		return df.mem.Each(fn)
	}
	var (
		rd   recordReader
		recs []record
	)
	for i := 0; i < len(df.order); {
		r := df.order[i]
		if df.deal[r] < 0 {
			if err := fn(Row{Line: int(df.line[r]), Err: df.refused[r]}); err != nil {
				return err
			}
			i++
			continue
		}
		j := i + 1
		for j < len(df.order) && df.deal[df.order[j]] == df.deal[r] {
			j++
		}
		var err error
		if recs, err = df.read(&rd, df.order[i:j], recs[:0]); err != nil {
			return err
		}
		rows, err := df.format.rows(recs)
		if err != nil {
			return fmt.Errorf("%w: read again, the row is not what it was (was the file changed?)", err)
		}
		for _, row := range rows {
			if err := fn(row); err != nil {
				return err
			}
		}
		i = j
	}
	return nil
}

// scan reads the whole file for its digest, whether it is valid UTF-8 and
// whether it starts with a byte-order mark.
func (df *File) scan() (valid, hasBOM bool, err error) {
	d := sha256.New()
	r := io.NewSectionReader(df.f, 0, df.size)
	buf := make([]byte, min(1<<20, df.size+utf8.UTFMax))
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
			d.Sum(df.digest[:0])
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
func (df *File) newReader(r io.Reader) *csv.Reader {
	cr := csv.NewReader(r)
	if c := df.format.comma(); c != 0 {
		cr.Comma = c
	}
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	return cr
}

// text returns a record's cells as UTF-8, decoding them in place.
func (df *File) text(cells []string) []string {
	if df.cp {
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
func (df *File) index() error {
	cr := df.newReader(bufio.NewReaderSize(io.NewSectionReader(df.f, df.base, df.size-df.base), int(min(1<<20, df.size))))
	header, err := cr.Read()
	if err != nil {
		return fmt.Errorf("header: %w", err)
	}
	header = df.text(slices.Clone(header))
	if err := df.format.header(header); err != nil {
		return err
	}
	df.cells = len(header)
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
		if len(df.line) == math.MaxInt32 {
			return fmt.Errorf("more than %d rows", math.MaxInt32)
		}
		row := int32(len(df.line))
		cells, err := cr.Read()
		if errors.Is(err, io.EOF) {
			df.off = append(df.off, off)
			break
		}
		line, d := 0, int32(-1)
		var deal, id string
		switch {
		case err != nil:
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return fmt.Errorf("csv: %w", err)
			}
			line, err = pe.StartLine, fmt.Errorf("csv: %w", pe.Err)
		case len(cells) != df.cells:
			line, _ = cr.FieldPos(0)
			err = fmt.Errorf("%d fields, the header has %d", len(cells), df.cells)
		default:
			line, _ = cr.FieldPos(0)
			deal, id, err = df.format.check(df.text(cells))
		}
		if err != nil {
			df.refused[row] = err
		} else {
			var ok bool
			if d, ok = deals[deal]; !ok {
				d = int32(len(deals))
				deals[strings.Clone(deal)] = d
			}
			if id != "" {
				ids = append(ids, rowID{maphash.String(seed, id), row})
			}
		}
		df.off = append(df.off, off)
		df.line = append(df.line, int32(min(line, math.MaxInt32)))
		df.deal = append(df.deal, d)
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
			first := map[string]int{}
			for _, x := range ids[i:j] {
				recs, err := df.read(&rd, []int32{x.row}, nil)
				if err != nil {
					return err
				}
				_, id, _ := df.format.check(recs[0].cells)
				if l, ok := first[id]; ok {
					df.deal[x.row], df.refused[x.row] = -1, df.format.repeats(id, l)
					continue
				}
				first[id] = recs[0].line
			}
		}
		i = j
	}
	df.order = publishOrder(df.deal, len(deals))
	return nil
}

// publishOrder returns the rows of deal (each row's deal, from 0 to
// deals-1, -1 for none) in publishing order: a deal's rows together, in
// order, where its first row is; a row of none where it is.
func publishOrder(deal []int32, deals int) []int32 {
	group := make([]int32, len(deal)) // the group of each row
	first := make([]int32, deals)     // a deal's group + 1, 0 for none yet
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

// read appends the records of rows (indexes of rows check took) to
// recs, reading them from the file again, their cells decoded; each
// record's row is its index in rows.
func (df *File) read(rd *recordReader, rows []int32, recs []record) ([]record, error) {
	buf := rd.buf[:0]
	for _, r := range rows {
		a, b := df.off[r], df.off[r+1]
		n := len(buf)
		buf = slices.Grow(buf, int(b-a)+1)[:n+int(b-a)]
		if m, err := df.f.ReadAt(buf[n:], df.base+a); m < len(buf)-n {
			return nil, fmt.Errorf("line %d: %w", df.line[r], cmp.Or(err, io.ErrUnexpectedEOF))
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
	cr := df.newReader(rd.br) // csv.NewReader keeps rd.br: it is a bufio.Reader
	for k, r := range rows {
		cells, err := cr.Read()
		if err == nil && len(cells) != df.cells {
			err = fmt.Errorf("%d fields, the header has %d", len(cells), df.cells)
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: read again, the row is not what it was (was the file changed?): %w", df.line[r], err)
		}
		recs = append(recs, record{row: k, line: int(df.line[r]), cells: df.text(slices.Clone(cells))})
	}
	return recs, nil
}

// historyFormat is History as a File's format.
type historyFormat struct {
	h     History
	col   map[string]int
	snaps []snapshot
	rs    Rows
	arena eventArena
}

// Open checks and indexes the history CSV at path, to be read deal by
// deal. The error is for the file as a whole, as Parse's is; a bad row is
// a refused Row. The File must be closed.
func (h History) Open(path string) (*File, error) {
	if err := h.checkCurrency(); err != nil {
		return nil, err
	}
	return openSource(path, func(src source) (*File, error) { return readFile(src, &historyFormat{h: h}) })
}

func (f *historyFormat) comma() rune                     { return f.h.Comma }
func (f *historyFormat) encoding() string                { return f.h.Encoding }
func (f *historyFormat) parse(data []byte) (Rows, error) { return f.h.Parse(data) }
func (f *historyFormat) late() bool                      { return false }

func (f *historyFormat) header(cells []string) (err error) {
	f.col, err = f.h.index(cells)
	return err
}

func (f *historyFormat) check(cells []string) (deal, id string, err error) {
	s, err := f.h.snapshot(cells, f.col)
	return s.opp, s.id, err
}

func (f *historyFormat) repeats(id string, first int) error {
	return repeated(map[string]int{id: first}, f.h.Columns.RowID, "row", id)
}

func (f *historyFormat) rows(recs []record) (Rows, error) {
	f.snaps = f.snaps[:0]
	for _, rec := range recs {
		s, err := f.h.snapshot(rec.cells, f.col)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", rec.line, err)
		}
		if s.id == "" {
			s.id = contentID(rec.cells)
		}
		s.row, s.line = rec.row, rec.line
		f.snaps = append(f.snaps, s)
	}
	f.rs = slices.Grow(f.rs[:0], len(recs))[:len(recs)]
	for i, rec := range recs {
		f.rs[i] = Row{Line: rec.line}
	}
	f.arena.free = f.arena.free[:0] // the last deal's events are published
	f.h.diff(f.snaps, func(s *snapshot, evs []event.Event) { f.rs[s.row].Events = f.arena.copy(evs) })
	return f.rs, nil
}

// fieldHistoryFormat is FieldHistory as a File's format.
type fieldHistoryFormat struct {
	h   FieldHistory
	col map[string]int
	cs  []fieldChange
}

// Open checks and indexes the OpportunityFieldHistory CSV at path, to be
// read deal by deal. The error is for the file as a whole, as Parse's is;
// a bad row is a refused Row. The File must be closed.
func (h FieldHistory) Open(path string) (*File, error) {
	if err := h.checkCurrency(); err != nil {
		return nil, err
	}
	return openSource(path, func(src source) (*File, error) { return readFile(src, &fieldHistoryFormat{h: h}) })
}

func (f *fieldHistoryFormat) comma() rune                     { return 0 }
func (f *fieldHistoryFormat) encoding() string                { return f.h.Encoding }
func (f *fieldHistoryFormat) parse(data []byte) (Rows, error) { return f.h.Parse(data) }
func (f *fieldHistoryFormat) late() bool                      { return true }

func (f *fieldHistoryFormat) header(cells []string) (err error) {
	f.col, err = fieldHistoryColumns(cells)
	return err
}

func (f *fieldHistoryFormat) check(cells []string) (deal, id string, err error) {
	c, err := f.h.change(record{cells: cells}, f.col)
	return c.opp, c.id, err
}

func (f *fieldHistoryFormat) repeats(id string, first int) error {
	return repeated(map[string]int{id: first}, "Id", "row", id)
}

func (f *fieldHistoryFormat) rows(recs []record) (Rows, error) {
	f.cs = f.cs[:0]
	for _, rec := range recs {
		c, err := f.h.change(rec, f.col)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", rec.line, err)
		}
		f.cs = append(f.cs, c)
	}
	slices.SortStableFunc(f.cs, func(a, b fieldChange) int { return a.at.Compare(b.at) })
	rows := make(Rows, len(recs))
	for i, rec := range recs {
		rows[i].Line = rec.line
	}
	f.h.opportunity(rows, f.cs, Skipped{})
	return rows, nil
}

// recordsFormat is a format of one record a deal or a contact role
// (records) as a File's format.
type recordsFormat struct {
	rs       records
	fn       recordFunc
	idColumn string
}

// openRecords opens the CSV at path as a File of rs.
func openRecords(path string, rs records) (*File, error) {
	return openSource(path, func(src source) (*File, error) { return readFile(src, &recordsFormat{rs: rs}) })
}

func (f *recordsFormat) comma() rune                     { return f.rs.comma }
func (f *recordsFormat) encoding() string                { return f.rs.encoding }
func (f *recordsFormat) parse(data []byte) (Rows, error) { return f.rs.parse(data) }
func (f *recordsFormat) late() bool                      { return false }

func (f *recordsFormat) header(cells []string) (err error) {
	f.fn, f.idColumn, err = f.rs.prepare(cells)
	return err
}

func (f *recordsFormat) check(cells []string) (deal, id string, err error) {
	evs, err := f.fn(record{cells: cells})
	if err != nil {
		return "", "", err
	}
	return evs[0].OpportunityID, f.rs.key(evs), nil
}

func (f *recordsFormat) repeats(id string, first int) error {
	return repeated(map[string]int{id: first}, f.idColumn, f.rs.noun, id)
}

func (f *recordsFormat) rows(recs []record) (Rows, error) {
	rows := make(Rows, len(recs))
	for i, rec := range recs {
		evs, err := f.fn(rec)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", rec.line, err)
		}
		rows[i] = Row{Line: rec.line, Events: evs}
	}
	return rows, nil
}

// Open checks and indexes the deals CSV at path, to be read deal by deal
// (see File). The File must be closed.
func (d Deals) Open(path string) (*File, error) {
	if err := d.checkCurrency(); err != nil {
		return nil, err
	}
	return openRecords(path, d.records())
}

// Open checks and indexes the Opportunity CSV at path, to be read deal by
// deal (see File). The File must be closed.
func (o Opportunity) Open(path string) (*File, error) { return openRecords(path, o.records()) }

// Open checks and indexes the OpportunityContactRole CSV at path, to be
// read deal by deal (see File). The File must be closed.
func (c ContactRoles) Open(path string) (*File, error) { return openRecords(path, c.records()) }

// Open checks and indexes the deals export at path, to be read deal by
// deal (see File). The File must be closed.
func (p HubSpotDeals) Open(path string) (*File, error) {
	if err := p.history().checkCurrency(); err != nil {
		return nil, err
	}
	return openRecords(path, p.records())
}

// Open checks and indexes the deals export at path, to be read deal by
// deal (see File). The File must be closed.
func (p PipedriveDeals) Open(path string) (*File, error) {
	if err := p.history().checkCurrency(); err != nil {
		return nil, err
	}
	return openRecords(path, p.records())
}
