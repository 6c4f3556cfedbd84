package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/commitflow/commitflow/internal/jsonpart"
	"github.com/commitflow/commitflow/internal/people"
)

// Users is a users/owners export read by ParseUsers.
type Users struct {
	// Format says what the file was read as.
	Format string
	// People are the people of the rows imported, in file order.
	People []people.Person
	// Rows counts the records of the file, refused ones included.
	Rows int
	// Refused are the rows not imported, in line order.
	Refused []Refusal
}

// The formats ParseUsers tells apart.
const (
	UsersCSV       = "CSV"
	UsersHubSpot   = "HubSpot owners"
	UsersPipedrive = "Pipedrive users"
	UsersJSON      = "JSON array of users"
)

// ParseUsers reads a users/owners export into people, telling the shape
// from the content:
//
//   - CSV with a header (encoding as Decode): commitflow's columns id,
//     name, email, team, manager, or a Salesforce User export (Id, Name or
//     FirstName and LastName, Email, UserRole.Name or Department,
//     ManagerId). Headers match whatever their case, spaces, "_" and "-";
//     the team is the first of team, UserRole.Name, Department that the
//     row fills.
//   - a HubSpot owners page (GET /crm/v3/owners: {"results": [...]}):
//     id, firstName and lastName, email, the primary team's name (else
//     the first team's).
//   - a Pipedrive users answer (GET /v1/users: {"data": [...]}): id, name,
//     email.
//   - a JSON array of such objects.
//
// A row without an id, without a name or e-mail (a missing name is the
// e-mail), with an e-mail that is no address or with an id an earlier row
// has is refused with its line and reason; the others are imported. The
// error is for a file that is none of these.
func ParseUsers(data []byte, encoding string) (Users, error) {
	start := bytes.TrimLeft(bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")), " \t\r\n")
	if len(start) > 0 && (start[0] == '{' || start[0] == '[') {
		return usersJSON(data)
	}
	return usersCSV(data, encoding)
}

// userColumns are the header names each field is read from, normalized
// (see normalizeHeader), in order of preference.
var userColumns = struct {
	id, name, first, last, email, team, manager []string
}{
	id:      []string{"id"},
	name:    []string{"name", "fullname"},
	first:   []string{"firstname"},
	last:    []string{"lastname"},
	email:   []string{"email"},
	team:    []string{"team", "userrole.name", "department"},
	manager: []string{"manager", "managerid"},
}

// normalizeHeader lower-cases a header name and drops spaces, "_" and
// "-", so that "First Name", "first_name" and "FirstName" are one.
func normalizeHeader(s string) string {
	s = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(s, "\ufeff")))
	return strings.NewReplacer(" ", "", "_", "", "-", "").Replace(s)
}

func usersCSV(data []byte, encoding string) (Users, error) {
	header, rows, recs, err := readCSV(data, encoding, 0)
	if err != nil {
		return Users{}, err
	}
	at := map[string]int{}
	for i, h := range header {
		if _, ok := at[normalizeHeader(h)]; !ok {
			at[normalizeHeader(h)] = i
		}
	}
	cols := func(names []string) []int {
		var out []int
		for _, n := range names {
			if i, ok := at[n]; ok {
				out = append(out, i)
			}
		}
		return out
	}
	id, name, first, last, email := cols(userColumns.id), cols(userColumns.name), cols(userColumns.first), cols(userColumns.last), cols(userColumns.email)
	team, manager := cols(userColumns.team), cols(userColumns.manager)
	if len(id) == 0 {
		return Users{}, fmt.Errorf("header: no id column (want id, name, email, team, manager, or a Salesforce User export's Id, Name, Email, ...; columns: %s)", strings.Join(header, ", "))
	}
	if len(name)+len(first)+len(last)+len(email) == 0 {
		return Users{}, fmt.Errorf("header: no name column (want name, or FirstName and LastName, or email; columns: %s)", strings.Join(header, ", "))
	}
	// The first of the columns that is filled in the record.
	cell := func(rec []string, cols []int) string {
		for _, i := range cols {
			if v := strings.TrimSpace(rec[i]); v != "" {
				return v
			}
		}
		return ""
	}
	u := newUsers(UsersCSV, len(rows))
	for _, r := range rows {
		if r.Err != nil {
			u.refuse(r.Line, r.Err.Error())
		}
	}
	for _, rec := range recs {
		c := rec.cells
		n := cell(c, name)
		if n == "" {
			n = strings.TrimSpace(cell(c, first) + " " + cell(c, last))
		}
		u.add(rec.line, people.Person{ID: cell(c, id), Name: n, Email: cell(c, email), Team: cell(c, team), Manager: cell(c, manager)})
	}
	return u.done(), nil
}

// jsonUser is a user of a JSON export: the fields of a HubSpot owner and
// of a Pipedrive user, and commitflow's team and manager.
type jsonUser struct {
	ID        json.RawMessage `json:"id"`
	Name      string          `json:"name"`
	FirstName string          `json:"firstName"`
	LastName  string          `json:"lastName"`
	Email     string          `json:"email"`
	Teams     []jsonTeam      `json:"teams"`
	Team      string          `json:"team"`
	Manager   string          `json:"manager"`
}

// jsonTeam is a HubSpot owner's team.
type jsonTeam struct {
	Name    string `json:"name"`
	Primary bool   `json:"primary"`
}

func usersJSON(data []byte) (Users, error) {
	format, elems, err := jsonUserElements(data)
	if err != nil {
		return Users{}, err
	}
	u := newUsers(format, len(elems))
	for _, e := range elems {
		var j jsonUser
		if err := json.Unmarshal(e.Data, &j); err != nil {
			u.refuse(e.Line, fmt.Sprintf("not a user: %v", err))
			continue
		}
		id, err := jsonID(j.ID)
		if err != nil {
			u.refuse(e.Line, err.Error())
			continue
		}
		p := people.Person{ID: id, Name: strings.TrimSpace(j.Name), Email: strings.TrimSpace(j.Email),
			Team: strings.TrimSpace(j.Team), Manager: strings.TrimSpace(j.Manager)}
		if p.Name == "" {
			p.Name = strings.TrimSpace(strings.TrimSpace(j.FirstName) + " " + strings.TrimSpace(j.LastName))
		}
		if i := slices.IndexFunc(j.Teams, func(t jsonTeam) bool { return t.Primary }); i >= 0 {
			p.Team = j.Teams[i].Name
		} else if p.Team == "" && len(j.Teams) > 0 {
			p.Team = j.Teams[0].Name
		}
		u.add(e.Line, p)
	}
	return u.done(), nil
}

// jsonID reads an id given as a JSON string or number.
func jsonID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return "", nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("id: %v", err)
		}
		return strings.TrimSpace(s), nil
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		return string(raw), nil
	}
	return "", fmt.Errorf("id %s is not a string or number", truncateBytes(raw))
}

func truncateBytes(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// jsonUserElements returns the user objects of a JSON export: the
// elements of a top-level array, or of the array under "results" (HubSpot)
// or "data" (Pipedrive, null when there are none).
func jsonUserElements(data []byte) (string, []jsonpart.Part, error) {
	dec := jsonpart.NewDecoder(data)
	var elems []jsonpart.Part
	array := func() error {
		var err error
		elems, err = dec.ReadArray()
		return err
	}
	fail := func(err error) (string, []jsonpart.Part, error) {
		return "", nil, fmt.Errorf(`users: want a HubSpot /crm/v3/owners answer ({"results": [...]}), a Pipedrive /v1/users answer ({"data": [...]}) or a JSON array of users: %w`, err)
	}
	if dec.PeekKind() == '[' {
		if err := array(); err != nil {
			return fail(err)
		}
		return UsersJSON, elems, nil
	}
	if _, err := dec.ReadToken(); err != nil {
		return fail(err)
	}
	format := ""
	for dec.PeekKind() != '}' {
		tok, err := dec.ReadToken()
		if err != nil {
			return fail(err)
		}
		name := tok.String() // before PeekKind, which voids tok
		switch k := dec.PeekKind(); {
		case format == "" && name == "results" && k == '[':
			format = UsersHubSpot
			err = array()
		case format == "" && name == "data" && k == '[':
			format = UsersPipedrive
			err = array()
		case format == "" && name == "data" && k == 'n':
			format = UsersPipedrive
			err = dec.SkipValue()
		default:
			err = dec.SkipValue()
		}
		if err != nil {
			return fail(err)
		}
	}
	if format == "" {
		return fail(errors.New("no results or data array"))
	}
	return format, elems, nil
}

// userSet collects the people of an export, refusing bad rows.
type userSet struct {
	Users
	lineOf map[string]int // id -> line of the row that gave it
}

func newUsers(format string, rows int) *userSet {
	return &userSet{Users: Users{Format: format, Rows: rows}, lineOf: map[string]int{}}
}

func (u *userSet) refuse(line int, reason string) {
	u.Refused = append(u.Refused, Refusal{Line: line, Reason: reason})
}

// add imports p, from the row at line, or refuses it.
func (u *userSet) add(line int, p people.Person) {
	if p.Name == "" {
		p.Name = p.Email
	}
	switch first, dup := u.lineOf[p.ID]; {
	case p.ID == "":
		u.refuse(line, "no id")
	case p.Name == "":
		u.refuse(line, fmt.Sprintf("user %s: no name nor e-mail", p.ID))
	case p.Email != "" && !isAddress(p.Email):
		u.refuse(line, fmt.Sprintf("user %s: e-mail %q is not an address", p.ID, p.Email))
	case dup:
		u.refuse(line, fmt.Sprintf("user %s: the same id as line %d", p.ID, first))
	default:
		u.lineOf[p.ID] = line
		u.People = append(u.People, p)
	}
}

// isAddress reports whether s looks like one e-mail address: one "@"
// with something on either side, no spaces or angle brackets.
func isAddress(s string) bool {
	at := strings.IndexByte(s, '@')
	return at > 0 && at < len(s)-1 && strings.Count(s, "@") == 1 && !strings.ContainsAny(s, " \t<>,;")
}

// done returns the users with the refusals in line order.
func (u *userSet) done() Users {
	slices.SortStableFunc(u.Refused, func(a, b Refusal) int { return a.Line - b.Line })
	return u.Users
}
