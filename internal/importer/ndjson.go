package importer

import (
	"bytes"
	"fmt"

	"github.com/commitflow/commitflow/internal/event"
)

// ParseNDJSON reads canonical events, one JSON envelope a line (see
// event.Parse). Blank lines are skipped; a line that does not parse is
// refused with the field it names. With tenant set, an event of another
// tenant is refused.
func ParseNDJSON(data []byte, tenant string) Rows {
	var rows Rows
	line := 0
	for len(data) > 0 {
		line++
		var l []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			l, data = data[:i], data[i+1:]
		} else {
			l, data = data, nil
		}
		l = bytes.TrimSpace(l)
		if line == 1 {
			l = bytes.TrimPrefix(l, []byte("\xef\xbb\xbf"))
		}
		if len(l) == 0 {
			continue
		}
		ev, err := event.Parse(l)
		switch {
		case err != nil:
			rows = append(rows, Row{Line: line, Err: err})
		case tenant != "" && ev.Tenant != tenant:
			rows = append(rows, Row{Line: line, Err: fmt.Errorf("tenant: %q is not the tenant imported, %q", ev.Tenant, tenant)})
		default:
			rows = append(rows, Row{Line: line, Events: []event.Event{ev}})
		}
	}
	return rows
}
