// Package jsonpart reads a JSON body part by part (a value, the elements
// of an array) and keeps the line of the body each part starts on, so that
// an import or a webhook can refuse one part by its line and keep the
// others. It reads vendors' JSON leniently: duplicate names and invalid
// UTF-8 are allowed, as encoding/json allows them.
package jsonpart

import (
	"bytes"

	"github.com/go-json-experiment/json/jsontext"
)

// Part is one JSON value of a body: a copy of its bytes and the line of the
// body it starts on, from 1.
type Part struct {
	Line int
	Data []byte
}

// Decoder is a jsontext.Decoder of a body that tells the line of the body
// a value it read starts on.
type Decoder struct {
	*jsontext.Decoder
	body []byte
}

// options are the decoder's: lenient, as encoding/json is.
var options = []jsontext.Options{jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true)}

// NewDecoder returns a Decoder at the start of body.
func NewDecoder(body []byte) *Decoder {
	return &Decoder{Decoder: jsontext.NewDecoder(bytes.NewReader(body), options...), body: body}
}

// Rewind takes the decoder back to the start of the body.
func (d *Decoder) Rewind() {
	d.Reset(bytes.NewReader(d.body), options...)
}

// Line returns the line of the body, from 1, that byte offset off is on;
// an offset out of the body is on its first or last line.
func (d *Decoder) Line(off int64) int {
	return 1 + bytes.Count(d.body[:max(0, min(off, int64(len(d.body))))], []byte("\n"))
}

// Part returns v, the value just read, as a Part.
func (d *Decoder) Part(v jsontext.Value) Part {
	return Part{Line: d.Line(d.InputOffset() - int64(len(v))), Data: bytes.Clone(v)}
}

// ReadPart reads the next value as a Part.
func (d *Decoder) ReadPart() (Part, error) {
	v, err := d.ReadValue()
	if err != nil {
		return Part{}, err
	}
	return d.Part(v), nil
}

// ReadArray reads an array, the next value, and returns its elements as
// Parts.
func (d *Decoder) ReadArray() ([]Part, error) {
	if _, err := d.ReadToken(); err != nil {
		return nil, err
	}
	var parts []Part
	for d.PeekKind() != ']' {
		p, err := d.ReadPart()
		if err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	_, err := d.ReadToken()
	return parts, err
}
