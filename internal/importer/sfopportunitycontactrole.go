package importer

import (
	"errors"
	"fmt"

	"github.com/commitflow/commitflow/internal/event"
)

// ContactRoles reads a Salesforce OpportunityContactRole export (Data
// Export or Data Loader: a header of API field names, quoted cells, UTF-8
// or Windows-1252): one row per contact on an opportunity, with columns
// Id, OpportunityId, ContactId and CreatedDate required, Role and
// IsDeleted read when the file has them. A row becomes contact.added at
// CreatedDate, id the row's Id, with the contact id and role, on the
// buyer side (contact roles name the customer's people). A role is
// evidence of consensus when the ladder's consensus roles list it.
//
// What such a row cannot tell: the contact's name and e-mail (they are in
// the Contact object, so the contact counts as "contact:ID" and is not
// matched with the same person on a call), when its role was changed
// (the current role is dated at CreatedDate), contacts removed before the
// export, and IsPrimary, which the envelope has no field for.
type ContactRoles struct {
	Tenant, Source string
	// Encoding is "utf-8", "windows-1252" or "" / "auto" (see Decode).
	Encoding string
}

// SalesforceContactRoles is the ContactRoles of tenant's Salesforce org.
func SalesforceContactRoles(tenant, encoding string) ContactRoles {
	return ContactRoles{Tenant: tenant, Source: "salesforce", Encoding: encoding}
}

// Parse reads an OpportunityContactRole CSV; the error is for the file as
// a whole, a bad row is a refused Row.
func (c ContactRoles) Parse(data []byte) (Rows, error) { return c.records().parse(data) }

// records is c as a format of one record a contact role.
func (c ContactRoles) records() records {
	return records{encoding: c.Encoding, noun: "row", byEvent: true, prepare: func(header []string) (recordFunc, string, error) {
		col, err := sfColumns(header, []string{"Id", "OpportunityId", "ContactId", "CreatedDate"}, "Role", "IsDeleted")
		if err != nil {
			return nil, "", err
		}
		return func(rec record) ([]event.Event, error) {
			ev, err := c.row(rec, col)
			if err != nil {
				return nil, err
			}
			return []event.Event{ev}, nil
		}, "Id", nil
	}}
}

// row returns the event of one contact role.
func (c ContactRoles) row(rec record, col map[string]int) (event.Event, error) {
	cell := sfCell(rec.cells, col)
	ev := event.Event{ID: cell("Id"), Tenant: c.Tenant, Source: c.Source, Type: event.ContactAdded,
		OpportunityID: cell("OpportunityId"),
		Payload:       &event.Contact{ContactID: cell("ContactId"), Role: cell("Role"), Side: event.Buyer}}
	if err := sfDeleted(cell("IsDeleted")); err != nil {
		return ev, err
	}
	switch {
	case ev.ID == "":
		return ev, errors.New("Id: missing")
	case ev.OpportunityID == "":
		return ev, errors.New("OpportunityId: missing")
	case ev.Payload.(*event.Contact).ContactID == "":
		return ev, errors.New("ContactId: missing")
	}
	var err error
	if ev.OccurredAt, err = parseTime(cell("CreatedDate"), ""); err != nil {
		return ev, fmt.Errorf("CreatedDate: %w", err)
	}
	return ev, ev.Validate()
}
