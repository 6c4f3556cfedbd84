package importer

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/commitflow/commitflow/internal/people"
)

// TestParseUsersFixtures reads each users/owners fixture (their shapes'
// sources are in testdata/users/SOURCES.md).
func TestParseUsersFixtures(t *testing.T) {
	const sfBoss, sfAda, sfGrace = "0055e000001MgRsAAK", "0055e000001AbCdAAK", "0055e000001AbCeAAK"
	tests := []struct {
		file     string
		encoding string
		format   string
		rows     int
		want     []people.Person
		refused  []Refusal
	}{
		{"salesforce_user_export.csv", "auto", UsersCSV, 4, []people.Person{
			{ID: sfAda, Name: "Ada Lovelace", Email: "ada.lovelace@acme.example", Team: "Enterprise Sales", Manager: sfBoss},
			{ID: sfGrace, Name: "Grace Hopper", Email: "grace.hopper@acme.example", Team: "Mid-Market Sales", Manager: sfBoss},
			{ID: sfBoss, Name: "Björn Müller", Email: "bjorn.muller@acme.example", Team: "Sales Management"},
			{ID: "0055e000001AbCfAAK", Name: "Integration User", Email: "integration@acme.example"},
		}, nil},
		{"salesforce_user_dataloader.csv", "auto", UsersCSV, 3, []people.Person{
			{ID: sfAda, Name: "Ada Lovelace", Email: "ada.lovelace@acme.example", Team: "Enterprise AE EMEA", Manager: sfBoss},
			{ID: sfGrace, Name: "Grace Hopper", Email: "grace.hopper@acme.example", Team: "Mid-Market Sales", Manager: sfBoss},
			{ID: sfBoss, Name: "Björn Müller", Email: "bjorn.muller@acme.example", Team: "RVP EMEA"},
		}, nil},
		{"hubspot_owners.json", "auto", UsersHubSpot, 3, []people.Person{
			{ID: "41629779", Name: "Ada Lovelace", Email: "ada@northwind.example", Team: "Enterprise EMEA"},
			{ID: "41629780", Name: "Grace Hopper", Email: "grace@northwind.example"},
			{ID: "41629781", Name: "former.rep@northwind.example", Email: "former.rep@northwind.example", Team: "Mid-Market"},
		}, nil},
		{"pipedrive_users.json", "auto", UsersPipedrive, 2, []people.Person{
			{ID: "7654321", Name: "Ada Lovelace", Email: "ada@initech.example"},
			{ID: "7654322", Name: "Grace Hopper", Email: "grace@initech.example"},
		}, nil},
		{"generic.csv", "utf-8", UsersCSV, 3, []people.Person{
			{ID: "u-100", Name: "Ada Lovelace", Email: "ada@example.com", Team: "Enterprise EMEA", Manager: "u-300"},
			{ID: "u-200", Name: "Hopper, Grace", Email: "grace@example.com", Team: "Mid-Market AMER", Manager: "u-300"},
			{ID: "u-300", Name: "Björn Müller", Email: "bjorn@example.com", Team: "Sales Management"},
		}, nil},
		{"bad.csv", "auto", UsersCSV, 7, []people.Person{
			{ID: "u-100", Name: "Ada Lovelace", Email: "ada@example.com", Team: "Enterprise EMEA", Manager: "u-300"},
		}, []Refusal{
			{3, "no id"},
			{4, `user u-200: e-mail "not-an-address" is not an address`},
			{5, "user u-300: no name nor e-mail"},
			{6, "user u-100: the same id as line 2"},
			{7, "6 fields, the header has 5"},
			{8, `csv: extraneous or missing " in quoted-field`},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "users", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseUsers(data, tt.encoding)
			if err != nil {
				t.Fatal(err)
			}
			if got.Format != tt.format || got.Rows != tt.rows {
				t.Errorf("read as %s, %d rows; want %s, %d", got.Format, got.Rows, tt.format, tt.rows)
			}
			if !reflect.DeepEqual(got.People, tt.want) {
				t.Errorf("people:\n got %+v\nwant %+v", got.People, tt.want)
			}
			if !reflect.DeepEqual(got.Refused, tt.refused) {
				t.Errorf("refused:\n got %+v\nwant %+v", got.Refused, tt.refused)
			}
		})
	}
}

// TestParseUsersShapes covers the shapes' edges: headers in any case and
// spelling, first and last names, JSON lines, ids of every JSON type,
// empty answers, and files that are no users export at all.
func TestParseUsersShapes(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []people.Person
		refused []Refusal
		err     bool
	}{
		{"no id column", "User ID,First Name,last_name,E-Mail,Department\nx1,Ada,Lovelace,ada@x.io,Sales\n",
			nil, nil, true}, // "User ID" is not "id"
		{"names from first and last", "Id,FirstName,LastName,Email,Department\nx1,Ada,Lovelace,ada@x.io,Sales\nx2,,,bo@x.io,\n",
			[]people.Person{{ID: "x1", Name: "Ada Lovelace", Email: "ada@x.io", Team: "Sales"}, {ID: "x2", Name: "bo@x.io", Email: "bo@x.io"}}, nil, false},
		{"role name before department", "id,name,UserRole.Name,Department\nx1,Ada,AE EMEA,Sales\nx2,Bo,,Ops\n",
			[]people.Person{{ID: "x1", Name: "Ada", Team: "AE EMEA"}, {ID: "x2", Name: "Bo", Team: "Ops"}}, nil, false},
		{"no name column", "id,team\nx1,Sales\n", nil, nil, true},
		{"empty file", "", nil, nil, true},
		{"bare array, lines", "[\n  {\"id\": 1, \"name\": \"Ada\"},\n  {\"id\": {\"x\": 1}, \"name\": \"Bo\"},\n  {\"name\": \"Cy\"},\n  {\"id\": \"4\", \"email\": 5}\n]",
			[]people.Person{{ID: "1", Name: "Ada"}}, []Refusal{
				{3, `id {"x": 1} is not a string or number`},
				{4, "no id"},
				{5, "not a user: json: cannot unmarshal number into Go struct field jsonUser.email of type string"},
			}, false},
		{"pipedrive without users", `{"success": true, "data": null}`, nil, nil, false},
		{"hubspot empty page", `{"results": []}`, nil, nil, false},
		{"no users array", `{"success": true, "users": []}`, nil, nil, true},
		{"broken json", `{"results": [{"id": "1"`, nil, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseUsers([]byte(tt.in), "auto")
			if (err != nil) != tt.err {
				t.Fatalf("error %v, want error %v", err, tt.err)
			}
			if err != nil {
				return
			}
			if !reflect.DeepEqual(got.People, tt.want) {
				t.Errorf("people:\n got %+v\nwant %+v", got.People, tt.want)
			}
			if !reflect.DeepEqual(got.Refused, tt.refused) {
				t.Errorf("refused:\n got %+v\nwant %+v", got.Refused, tt.refused)
			}
		})
	}
}

// FuzzUsers checks what ParseUsers promises whatever its input: every row
// imported or refused once, refusals in line order, every person with an
// id and a name, no id twice.
func FuzzUsers(f *testing.F) {
	for _, name := range []string{"generic.csv", "bad.csv", "hubspot_owners.json", "pipedrive_users.json", "salesforce_user_export.csv"} {
		data, err := os.ReadFile(filepath.Join("testdata", "users", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		u, err := ParseUsers(data, "auto")
		if err != nil {
			return
		}
		if len(u.People)+len(u.Refused) != u.Rows {
			t.Fatalf("%d rows, %d people and %d refused", u.Rows, len(u.People), len(u.Refused))
		}
		seen := map[string]bool{}
		for _, p := range u.People {
			if p.ID == "" || p.Name == "" || seen[p.ID] {
				t.Fatalf("person %+v (seen before: %v)", p, seen[p.ID])
			}
			seen[p.ID] = true
		}
		for i, r := range u.Refused {
			if r.Line < 1 || r.Reason == "" || i > 0 && r.Line < u.Refused[i-1].Line {
				t.Fatalf("refusal %d: %+v", i, r)
			}
		}
	})
}
