package event

import (
	"encoding/binary"
	"strconv"
	"time"
	"unicode/utf8"
)

// decodeFast decodes data into e without reflection when data is in the
// shape Marshal and every sender in practice write: "type" before
// "payload", times in UTC ("Z"), no null, no surrogate escapes, names
// without escapes. It reports false for anything else, valid or not, with
// e in any state; UnmarshalJSON then decodes data with the full decoder,
// which gives the same event or the error naming what is wrong. Whatever
// decodeFast accepts, the full decoder accepts as the same event
// (FuzzDecodeFast checks it): it refuses unknown and duplicate names,
// invalid UTF-8 and trailing data as the full decoder does.
//
// It exists because decoding is the ingest worker's largest cost per
// event after JetStream's delivery (BenchmarkParse).
func decodeFast(data []byte, e *Event) bool {
	*e = Event{}
	s := scanner{b: data}
	ok := s.object(func(name []byte) (uint32, bool) {
		switch string(name) {
		case "v":
			return 1 << 0, s.int(&e.V)
		case "id":
			return 1 << 1, s.str(&e.ID)
		case "tenant":
			return 1 << 2, s.str(&e.Tenant)
		case "source":
			return 1 << 3, s.str(&e.Source)
		case "type":
			return 1 << 4, s.typ(&e.Type)
		case "occurred_at":
			return 1 << 5, s.time(&e.OccurredAt)
		case "received_at":
			return 1 << 6, s.time(&e.ReceivedAt)
		case "opportunity_id":
			return 1 << 7, s.str(&e.OpportunityID)
		case "payload":
			p := NewPayload(e.Type)
			if p == nil {
				return 0, false
			}
			e.Payload = p
			s.text, s.base = string(s.b[s.i:]), s.i
			return 1 << 8, s.payload(p)
		}
		return 0, false
	})
	if !ok || e.Payload == nil {
		return false
	}
	s.space()
	return s.i == len(s.b)
}

// payload decodes the payload object into p.
func (s *scanner) payload(p Payload) bool {
	switch p := p.(type) {
	case *Opportunity:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "name":
				return 1 << 0, s.str(&p.Name)
			case "account_id":
				return 1 << 1, s.str(&p.AccountID)
			case "account_name":
				return 1 << 2, s.str(&p.AccountName)
			case "amount":
				return 1 << 3, s.float(&p.Amount)
			case "currency":
				return 1 << 4, s.str(&p.Currency)
			case "close_date":
				return 1 << 5, s.str((*string)(&p.CloseDate))
			case "pipeline":
				return 1 << 6, s.str(&p.Pipeline)
			case "stage":
				return 1 << 7, s.str(&p.Stage)
			case "probability":
				return 1 << 8, s.float(&p.Probability)
			case "forecast_category":
				return 1 << 9, s.str(&p.ForecastCategory)
			case "owner_id":
				return 1 << 10, s.str(&p.OwnerID)
			case "team":
				return 1 << 11, s.str(&p.Team)
			case "segment":
				return 1 << 12, s.str(&p.Segment)
			case "lead_source":
				return 1 << 13, s.str(&p.LeadSource)
			case "product":
				return 1 << 14, s.str(&p.Product)
			case "created_at":
				return 1 << 15, s.timePtr(&p.CreatedAt)
			case "attributes":
				return 1 << 16, s.strMap(&p.Attributes)
			}
			return 0, false
		})
	case *StageChange:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "pipeline":
				return 1 << 0, s.str(&p.Pipeline)
			case "from":
				return 1 << 1, s.str(&p.From)
			case "to":
				return 1 << 2, s.str(&p.To)
			case "probability":
				return 1 << 3, s.float(&p.Probability)
			}
			return 0, false
		})
	case *AmountChange:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "from":
				return 1 << 0, s.float(&p.From)
			case "to":
				return 1 << 1, s.float(&p.To)
			case "currency":
				return 1 << 2, s.str(&p.Currency)
			case "cleared":
				return 1 << 3, s.bool(&p.Cleared)
			}
			return 0, false
		})
	case *ProbabilityChange:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "from":
				return 1 << 0, s.float(&p.From)
			case "to":
				return 1 << 1, s.float(&p.To)
			}
			return 0, false
		})
	case *CloseDateChange:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "from":
				return 1 << 0, s.str((*string)(&p.From))
			case "to":
				return 1 << 1, s.str((*string)(&p.To))
			}
			return 0, false
		})
	case *OwnerChange:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "from":
				return 1 << 0, s.str(&p.From)
			case "to":
				return 1 << 1, s.str(&p.To)
			case "team":
				return 1 << 2, s.str(&p.Team)
			}
			return 0, false
		})
	case *ForecastCategoryChange:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "from":
				return 1 << 0, s.str(&p.From)
			case "to":
				return 1 << 1, s.str(&p.To)
			}
			return 0, false
		})
	case *Won:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "amount":
				return 1 << 0, s.float(&p.Amount)
			case "currency":
				return 1 << 1, s.str(&p.Currency)
			case "reason":
				return 1 << 2, s.str(&p.Reason)
			}
			return 0, false
		})
	case *Lost:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "reason":
				return 1 << 0, s.str(&p.Reason)
			case "competitor":
				return 1 << 1, s.str(&p.Competitor)
			case "amount":
				return 1 << 2, s.float(&p.Amount)
			case "currency":
				return 1 << 3, s.str(&p.Currency)
			}
			return 0, false
		})
	case *Contact:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "contact_id":
				return 1 << 0, s.str(&p.ContactID)
			case "name":
				return 1 << 1, s.str(&p.Name)
			case "email":
				return 1 << 2, s.str(&p.Email)
			case "title":
				return 1 << 3, s.str(&p.Title)
			case "role":
				return 1 << 4, s.str(&p.Role)
			case "side":
				return 1 << 5, s.str((*string)(&p.Side))
			}
			return 0, false
		})
	case *Activity:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "kind":
				return 1 << 0, s.str(&p.Kind)
			case "subject":
				return 1 << 1, s.str(&p.Subject)
			case "status":
				return 1 << 2, s.str(&p.Status)
			case "owner_side":
				return 1 << 3, s.str((*string)(&p.OwnerSide))
			case "participants":
				return 1 << 4, s.participants(&p.Participants)
			case "due_at":
				return 1 << 5, s.timePtr(&p.DueAt)
			}
			return 0, false
		})
	case *Call:
		return s.object(func(name []byte) (uint32, bool) {
			switch string(name) {
			case "call_id":
				return 1 << 0, s.str(&p.CallID)
			case "title":
				return 1 << 1, s.str(&p.Title)
			case "started_at":
				return 1 << 2, s.time(&p.StartedAt)
			case "duration_seconds":
				return 1 << 3, s.int(&p.DurationSeconds)
			case "participants":
				return 1 << 4, s.participants(&p.Participants)
			case "action_items":
				return 1 << 5, s.actionItems(&p.ActionItems)
			case "next_meeting_booked":
				return 1 << 6, s.bool(&p.NextMeetingBooked)
			case "next_meeting_at":
				return 1 << 7, s.timePtr(&p.NextMeetingAt)
			}
			return 0, false
		})
	}
	return false
}

func (s *scanner) participants(dst *[]Participant) bool {
	return objects(s, dst, func(p *Participant, name []byte) (uint32, bool) {
		switch string(name) {
		case "email":
			return 1 << 0, s.str(&p.Email)
		case "name":
			return 1 << 1, s.str(&p.Name)
		case "side":
			return 1 << 2, s.str((*string)(&p.Side))
		case "title":
			return 1 << 3, s.str(&p.Title)
		case "role":
			return 1 << 4, s.str(&p.Role)
		}
		return 0, false
	})
}

func (s *scanner) actionItems(dst *[]ActionItem) bool {
	return objects(s, dst, func(a *ActionItem, name []byte) (uint32, bool) {
		switch string(name) {
		case "text":
			return 1 << 0, s.str(&a.Text)
		case "owner_side":
			return 1 << 1, s.str((*string)(&a.OwnerSide))
		case "owner_email":
			return 1 << 2, s.str(&a.OwnerEmail)
		case "due_at":
			return 1 << 3, s.timePtr(&a.DueAt)
		case "kind":
			return 1 << 4, s.str(&a.Kind)
		}
		return 0, false
	})
}

// objects reads an array of objects into a new slice, each element's
// members as member reads them (see scanner.object).
func objects[T any](s *scanner, dst *[]T, member func(elem *T, name []byte) (uint32, bool)) bool {
	*dst = []T{}
	return s.array(func() bool {
		*dst = append(*dst, *new(T))
		elem := &(*dst)[len(*dst)-1]
		return s.object(func(name []byte) (uint32, bool) { return member(elem, name) })
	})
}

// scanner reads JSON from b at i. Its methods report false, leaving i
// anywhere, for input they do not take: invalid JSON or a shape the full
// decoder is left to handle.
//
// The envelope's strings are copied one by one: the ingest worker keeps
// them, and not the payload, until its batch is stored. The payload's
// strings without escapes are substrings of text, one copy of b from
// base on: one allocation for the payload instead of one per field.
type scanner struct {
	b    []byte
	i    int
	text string
	base int
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next skips white space and reports whether the next byte is c,
// consuming it if so.
func (s *scanner) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// object reads an object, calling member with each name, positioned at
// its value; member reads the value and returns the name's bit. A name
// member does not know (bit 0), a name seen twice or a value member
// refuses ends it.
func (s *scanner) object(member func(name []byte) (uint32, bool)) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	var seen uint32
	for {
		s.space()
		name, ok := s.name()
		if !ok || !s.next(':') {
			return false
		}
		s.space()
		bit, ok := member(name)
		if !ok || bit == 0 || seen&bit != 0 {
			return false
		}
		seen |= bit
		if s.next(',') {
			continue
		}
		return s.next('}')
	}
}

// array reads an array, calling elem at each element.
func (s *scanner) array(elem func() bool) bool {
	if !s.next('[') {
		return false
	}
	if s.next(']') {
		return true
	}
	for {
		s.space()
		if !elem() {
			return false
		}
		if s.next(',') {
			continue
		}
		return s.next(']')
	}
}

// name reads a member name without escapes, in ASCII or valid UTF-8.
func (s *scanner) name() ([]byte, bool) {
	start, end, esc, ok := s.quoted()
	if !ok || esc {
		return nil, false
	}
	return s.b[start:end], true
}

// quoted reads a string and returns the offsets of its raw bytes between
// the quotes and whether they hold escapes. It refuses control characters
// and invalid UTF-8.
func (s *scanner) quoted() (start, end int, esc, ok bool) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return 0, 0, false, false
	}
	s.i++
	start = s.i
	ascii := true
	for s.i < len(s.b) {
		for s.i+8 <= len(s.b) && !special(binary.LittleEndian.Uint64(s.b[s.i:])) {
			s.i += 8
		}
		for s.i < len(s.b) && plain[s.b[s.i]] {
			s.i++
		}
		if s.i >= len(s.b) {
			break
		}
		switch c := s.b[s.i]; {
		case c == '"':
			end = s.i
			s.i++
			if !ascii && !utf8.Valid(s.b[start:end]) {
				return 0, 0, false, false
			}
			return start, end, esc, true
		case c == '\\':
			esc = true
			s.i += 2 // the escaped byte is checked when unescaping
		case c < 0x20:
			return 0, 0, false, false
		default: // c >= utf8.RuneSelf
			ascii = false
			s.i++
		}
	}
	return 0, 0, false, false
}

// special reports whether any of the 8 bytes of x is not plain: a quote,
// a backslash, a control character or not ASCII. Each test is exact for
// the word as a whole (a borrow only carries past a byte that matched),
// so a false answer lets quoted skip the 8 bytes at once.
func special(x uint64) bool {
	const lsb, msb = 0x0101010101010101, 0x8080808080808080
	q, bs := x^(lsb*'"'), x^(lsb*'\\')
	return ((q-lsb)&^q|(bs-lsb)&^bs|(x-lsb*0x20)&^x|x)&msb != 0
}

// plain marks the bytes a string holds as they are: printable ASCII but
// the quote and the backslash.
var plain = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// str reads a string into dst.
func (s *scanner) str(dst *string) bool {
	start, end, esc, ok := s.quoted()
	if !ok {
		return false
	}
	if !esc {
		if s.text != "" {
			*dst = s.text[start-s.base : end-s.base]
		} else {
			*dst = string(s.b[start:end])
		}
		return true
	}
	b, ok := unescape(s.b[start:end])
	*dst = string(b)
	return ok
}

// typ reads an event type: one of Types, without allocating, or anything
// else as a new string.
func (s *scanner) typ(dst *Type) bool {
	start, end, esc, ok := s.quoted()
	if !ok || esc {
		return ok && s.str((*string)(dst))
	}
	raw := s.b[start:end]
	for _, t := range Types {
		if string(t) == string(raw) {
			*dst = t
			return true
		}
	}
	*dst = Type(raw)
	return true
}

// unescape decodes the escapes of a string's raw bytes; it refuses
// surrogate escapes.
func unescape(raw []byte) ([]byte, bool) {
	out := make([]byte, 0, len(raw))
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(raw) {
			return nil, false
		}
		switch raw[i] {
		case '"', '\\', '/':
			out = append(out, raw[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+4 >= len(raw) {
				return nil, false
			}
			var r rune
			for _, h := range raw[i+1 : i+5] {
				switch {
				case '0' <= h && h <= '9':
					r = r<<4 | rune(h-'0')
				case 'a' <= h && h <= 'f':
					r = r<<4 | rune(h-'a'+10)
				case 'A' <= h && h <= 'F':
					r = r<<4 | rune(h-'A'+10)
				default:
					return nil, false
				}
			}
			if 0xD800 <= r && r <= 0xDFFF {
				return nil, false
			}
			out = utf8.AppendRune(out, r)
			i += 4
		default:
			return nil, false
		}
	}
	return out, true
}

// number reads a JSON number's bytes.
func (s *scanner) number() ([]byte, bool) {
	start := s.i
	b := s.b
	if s.i < len(b) && b[s.i] == '-' {
		s.i++
	}
	switch {
	case s.i < len(b) && b[s.i] == '0':
		s.i++
	case s.i < len(b) && '1' <= b[s.i] && b[s.i] <= '9':
		s.digits()
	default:
		return nil, false
	}
	if s.i < len(b) && b[s.i] == '.' {
		s.i++
		if s.digits() == 0 {
			return nil, false
		}
	}
	if s.i < len(b) && (b[s.i] == 'e' || b[s.i] == 'E') {
		s.i++
		if s.i < len(b) && (b[s.i] == '+' || b[s.i] == '-') {
			s.i++
		}
		if s.digits() == 0 {
			return nil, false
		}
	}
	return b[start:s.i], true
}

// digits skips decimal digits and returns how many.
func (s *scanner) digits() int {
	n := 0
	for s.i < len(s.b) && '0' <= s.b[s.i] && s.b[s.i] <= '9' {
		s.i++
		n++
	}
	return n
}

func (s *scanner) float(dst *float64) bool {
	num, ok := s.number()
	if !ok {
		return false
	}
	f, err := strconv.ParseFloat(string(num), 64)
	*dst = f
	return err == nil
}

// int reads an integer written without fraction or exponent, of at most
// 18 digits.
func (s *scanner) int(dst *int) bool {
	num, ok := s.number()
	if !ok || len(num) > 18 {
		return false
	}
	n, err := strconv.Atoi(string(num))
	*dst = n
	return err == nil
}

func (s *scanner) bool(dst *bool) bool {
	switch {
	case len(s.b)-s.i >= 4 && string(s.b[s.i:s.i+4]) == "true":
		*dst = true
		s.i += 4
	case len(s.b)-s.i >= 5 && string(s.b[s.i:s.i+5]) == "false":
		*dst = false
		s.i += 5
	default:
		return false
	}
	return true
}

// time reads an RFC 3339 time in UTC: 2006-01-02T15:04:05Z, with up to
// nine digits of fraction.
func (s *scanner) time(dst *time.Time) bool {
	start, end, esc, ok := s.quoted()
	if !ok || esc || !utcTime(s.b[start:end]) {
		return false
	}
	return dst.UnmarshalText(s.b[start:end]) == nil
}

func (s *scanner) timePtr(dst **time.Time) bool {
	*dst = new(time.Time)
	return s.time(*dst)
}

// utcTime reports whether b is written 2006-01-02T15:04:05[.999999999]Z.
func utcTime(b []byte) bool {
	const layout = "0000-00-00T00:00:00"
	if len(b) < len(layout)+1 || len(b) > len(layout)+11 || b[len(b)-1] != 'Z' {
		return false
	}
	for i := 0; i < len(layout); i++ {
		if layout[i] == '0' {
			if b[i] < '0' || b[i] > '9' {
				return false
			}
		} else if b[i] != layout[i] {
			return false
		}
	}
	frac := b[len(layout) : len(b)-1]
	if len(frac) == 0 {
		return true
	}
	if len(frac) < 2 || frac[0] != '.' {
		return false
	}
	for _, c := range frac[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// strMap reads an object of strings into a new map.
func (s *scanner) strMap(dst *map[string]string) bool {
	m := map[string]string{}
	*dst = m
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	for {
		s.space()
		name, ok := s.name()
		if !ok || !s.next(':') {
			return false
		}
		if _, dup := m[string(name)]; dup {
			return false
		}
		s.space()
		var v string
		if !s.str(&v) {
			return false
		}
		m[string(name)] = v
		if s.next(',') {
			continue
		}
		return s.next('}')
	}
}
