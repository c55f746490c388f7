package bridge

import (
	"errors"
	"fmt"

	"switchboard/mapping"
)

// StanzaError is an XMPP stanza error in neutral form: the component
// renders it as <error type=…><condition/><text>…</text></error>. Transports
// and the bridge return it so that every refusal reaches the user as the
// right condition with a human sentence.
type StanzaError struct {
	Type      string // "cancel", "modify", "wait", "auth", "continue"
	Condition string // RFC 6120 condition name, e.g. "item-not-found"
	Text      string // a sentence for the user
}

func (e *StanzaError) Error() string {
	if e.Text == "" {
		return e.Condition
	}
	return e.Condition + ": " + e.Text
}

// Conditions used across the gateway (RFC 6120 §8.3.3).
const (
	BadRequest            = "bad-request"
	Conflict              = "conflict"
	FeatureNotImplemented = "feature-not-implemented"
	Forbidden             = "forbidden"
	Gone                  = "gone"
	InternalServerError   = "internal-server-error"
	ItemNotFound          = "item-not-found"
	JIDMalformed          = "jid-malformed"
	NotAcceptable         = "not-acceptable"
	NotAllowed            = "not-allowed"
	NotAuthorized         = "not-authorized"
	PolicyViolation       = "policy-violation"
	RecipientUnavailable  = "recipient-unavailable"
	RegistrationRequired  = "registration-required"
	RemoteServerNotFound  = "remote-server-not-found"
	RemoteServerTimeout   = "remote-server-timeout"
	ResourceConstraint    = "resource-constraint"
	ServiceUnavailable    = "service-unavailable"
	UndefinedCondition    = "undefined-condition"
	UnexpectedRequest     = "unexpected-request"
)

// defaultType is the error type RFC 6120 §8.3.3 gives each condition.
var defaultType = map[string]string{
	BadRequest:            "modify",
	Conflict:              "cancel",
	FeatureNotImplemented: "cancel",
	Forbidden:             "auth",
	Gone:                  "cancel",
	InternalServerError:   "cancel",
	ItemNotFound:          "cancel",
	JIDMalformed:          "modify",
	NotAcceptable:         "modify",
	NotAllowed:            "cancel",
	NotAuthorized:         "auth",
	PolicyViolation:       "modify",
	RecipientUnavailable:  "wait",
	RegistrationRequired:  "auth",
	RemoteServerNotFound:  "cancel",
	RemoteServerTimeout:   "wait",
	ResourceConstraint:    "wait",
	ServiceUnavailable:    "cancel",
	UndefinedCondition:    "cancel",
	UnexpectedRequest:     "wait",
}

// Errorf builds a StanzaError with the condition's default type.
func Errorf(condition, format string, args ...any) *StanzaError {
	t := defaultType[condition]
	if t == "" {
		t = "cancel"
	}
	return &StanzaError{Type: t, Condition: condition, Text: fmt.Sprintf(format, args...)}
}

// AsStanzaError turns any error into a StanzaError: a *StanzaError as it
// is, a *mapping.Error with its condition, anything else as
// internal-server-error with a generic sentence (the detail is logged, not
// shown: it may hold secrets).
func AsStanzaError(err error) *StanzaError {
	if err == nil {
		return nil
	}
	var se *StanzaError
	if errors.As(err, &se) {
		return se
	}
	if me := mapping.AsError(err); me != nil {
		return Errorf(me.Condition, "%s", me.Text)
	}
	return Errorf(InternalServerError, "The gateway failed to handle this request; the administrator can find the reason in its log.")
}

// ErrQueueFull is returned by a Sink when its bounded queue is full.
var ErrQueueFull = errors.New("the XMPP send queue is full")
