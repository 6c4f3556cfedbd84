package bus

import (
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Dead-letter headers, set on every message published to CF_DLQ.
const (
	// ErrorHeader holds the reason the message was refused; a validation
	// error names the offending field.
	ErrorHeader = "Commitflow-Error"
	// SubjectHeader holds the subject the message was received on.
	SubjectHeader = "Commitflow-Subject"
	// StreamSeqHeader holds the message's sequence in CF_EVENTS.
	StreamSeqHeader = "Commitflow-Stream-Seq"
)

// DeadLetter returns the CF_DLQ message for the CF_EVENTS message at stream
// sequence seq, received on subject with the bytes data, refused for
// reason. It goes on DLQSubject(subject) with the original bytes; its
// Nats-Msg-Id is "dlq:<seq>", so that the letter of one message is stored
// once however often it is published.
func DeadLetter(subject string, seq uint64, data []byte, reason string) *nats.Msg {
	m := nats.NewMsg(DLQSubject(subject))
	m.Data = data
	s := strconv.FormatUint(seq, 10)
	m.Header.Set(ErrorHeader, reason)
	m.Header.Set(SubjectHeader, subject)
	m.Header.Set(StreamSeqHeader, s)
	m.Header.Set(jetstream.MsgIDHeader, "dlq:"+s)
	return m
}
