// Package param is the error of a bad request parameter: the parameter,
// a machine-readable code from a small closed set, and a reason for
// people. The metric packages (metrics, forecast, deals) return it for the
// input they refuse, the API answers it with 400 and
// {"error": Reason, "param": Param, "code": Code}, and `commitflow report`
// names the parameter's flag.
package param

import (
	"errors"
	"fmt"
)

// Code says what is wrong with a parameter. Clients may switch on it: the
// set is closed, and a new code is an API change.
type Code string

// The codes.
const (
	// Required: the parameter is missing (or empty).
	Required Code = "required"
	// Invalid: the value is malformed (not a date, not a number, a bad
	// %-escape) or not one of the values the parameter takes.
	Invalid Code = "invalid"
	// OutOfRange: a number, date or length is outside its bounds.
	OutOfRange Code = "out_of_range"
	// Unknown: the endpoint takes no parameter of that name.
	Unknown Code = "unknown"
	// Repeated: the parameter was given more than once.
	Repeated Code = "repeated"
	// Conflict: the value contradicts another parameter's (from not
	// before to, table without format=csv).
	Conflict Code = "conflict"
	// Unsupported: the value is well formed but this server cannot serve
	// it (a currency without a rate table that has it, a CSV table the
	// answer does not hold).
	Unsupported Code = "unsupported"
)

// Codes lists every code, in the order above.
var Codes = []Code{Required, Invalid, OutOfRange, Unknown, Repeated, Conflict, Unsupported}

// Error is a request parameter that is missing or bad.
type Error struct {
	// Param names the parameter as the API spells it (as_of, page_size).
	Param string
	// Code says what is wrong, for programs.
	Code Code
	// Reason says what is wrong, for people: "required", "must be before
	// to", "want an integer, got \"x\"".
	Reason string
}

func (e *Error) Error() string { return "parameter " + e.Param + ": " + e.Reason }

// Errorf returns an *Error for param with code and the reason formatted
// as fmt.Sprintf does.
func Errorf(param string, code Code, format string, args ...any) error {
	return &Error{Param: param, Code: code, Reason: fmt.Sprintf(format, args...)}
}

// As returns the *Error err wraps, or nil.
func As(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return nil
}
