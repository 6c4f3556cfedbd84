package importer

import (
	"bufio"
	"bytes"
	"cmp"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"

	"github.com/commitflow/commitflow/internal/event"
)

// NDJSONFile is a file of canonical events (see ParseNDJSON) read deal by
// deal, as File reads a CSV: opening it reads it once for its digest and
// to check every event and note where it is and which deal it is of
// (~20 bytes a line and each deal's id); Each reads a deal's events again
// when it publishes them. Its rows are ParseNDJSON's, in byDeal's order.
type NDJSONFile struct {
	source
	tenant string

	off     []int64 // each row's first byte
	n       []int32 // each row's bytes
	line    []int32
	deal    []int32 // each row's deal, from 0; -1 for a refused row, -2 for an event of no deal
	refused map[int32]error
	order   []int32
}

// OpenNDJSON checks and indexes the NDJSON file at path, to be read deal
// by deal; with tenant set, an event of another tenant is refused. The
// NDJSONFile must be closed.
func OpenNDJSON(path, tenant string) (*NDJSONFile, error) {
	return openSource(path, func(src source) (*NDJSONFile, error) { return readNDJSON(src, tenant) })
}

// readNDJSON indexes the NDJSON of src (see OpenNDJSON).
func readNDJSON(src source, tenant string) (*NDJSONFile, error) {
	nf := &NDJSONFile{source: src, tenant: tenant, refused: map[int32]error{}}
	d := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(io.NewSectionReader(src.f, 0, src.size), d), int(min(1<<20, max(src.size, 16))))
	deals := map[string]int32{}
	var (
		off  int64
		line int
		buf  []byte
	)
	for {
		l, err := readLine(br, buf[:0])
		if err != nil && !errors.Is(err, io.EOF) {
			return nil, err
		}
		if len(l) == 0 && errors.Is(err, io.EOF) {
			break
		}
		buf = l
		line++
		start, n := off, len(l)
		off += int64(n)
		t := bytes.TrimSpace(l)
		if line == 1 {
			t = bytes.TrimPrefix(t, bom)
		}
		if len(t) == 0 {
			continue
		}
		if len(nf.line) == math.MaxInt32 || line > math.MaxInt32 || n > math.MaxInt32 {
			return nil, fmt.Errorf("line %d: more than %d lines, rows or bytes", line, math.MaxInt32)
		}
		row := int32(len(nf.line))
		ev, err := nf.parse(t)
		dl := int32(-2)
		switch {
		case err != nil:
			nf.refused[row], dl = err, -1
		case ev.OpportunityID != "":
			k := ev.Tenant + "\x00" + ev.OpportunityID
			var ok bool
			if dl, ok = deals[k]; !ok {
				dl = int32(len(deals))
				deals[strings.Clone(k)] = dl
			}
		}
		nf.off = append(nf.off, start)
		nf.n = append(nf.n, int32(n))
		nf.line = append(nf.line, int32(line))
		nf.deal = append(nf.deal, dl)
	}
	d.Sum(nf.digest[:0])
	nf.order = publishOrder(nf.deal, len(deals))
	return nf, nil
}

// readLine appends the next line of br, with its end, to buf.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for {
		l, err := br.ReadSlice('\n')
		buf = append(buf, l...)
		if !errors.Is(err, bufio.ErrBufferFull) {
			return buf, err
		}
	}
}

// parse reads one line's event (trimmed), refusing another tenant's.
func (nf *NDJSONFile) parse(l []byte) (event.Event, error) {
	ev, err := event.Parse(l)
	if err == nil && nf.tenant != "" && ev.Tenant != nf.tenant {
		err = fmt.Errorf("tenant: %q is not the tenant imported, %q", ev.Tenant, nf.tenant)
	}
	return ev, err
}

// Len is the number of rows: the lines that are not blank.
func (nf *NDJSONFile) Len() int { return len(nf.line) }

// Refused returns the refused rows, in file order.
func (nf *NDJSONFile) Refused() ([]Row, error) {
	var out []Row
	for r, d := range nf.deal {
		if d == -1 {
			out = append(out, Row{Line: int(nf.line[r]), Err: nf.refused[int32(r)]})
		}
	}
	return out, nil
}

// Each calls fn with every row deal by deal, reading each event from the
// file again.
func (nf *NDJSONFile) Each(fn func(Row) error) error {
	var (
		buf []byte
		evs = make([]event.Event, 1)
	)
	for _, r := range nf.order {
		if nf.deal[r] == -1 {
			if err := fn(Row{Line: int(nf.line[r]), Err: nf.refused[r]}); err != nil {
				return err
			}
			continue
		}
		buf = slices.Grow(buf[:0], int(nf.n[r]))[:nf.n[r]]
		if m, err := nf.f.ReadAt(buf, nf.off[r]); m < len(buf) {
			return fmt.Errorf("line %d: %w", nf.line[r], cmp.Or(err, io.ErrUnexpectedEOF))
		}
		t := bytes.TrimSpace(buf)
		if nf.line[r] == 1 {
			t = bytes.TrimPrefix(t, bom)
		}
		ev, err := nf.parse(t)
		if err != nil {
			return fmt.Errorf("line %d: %w: read again, the event is not what it was (was the file changed?)", nf.line[r], err)
		}
		evs[0] = ev
		if err := fn(Row{Line: int(nf.line[r]), Events: evs}); err != nil {
			return err
		}
	}
	return nil
}
