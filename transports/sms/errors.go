package sms

import (
	"fmt"

	"switchboard/bridge"
)

func errf(format string, args ...any) error { return numberError(fmt.Sprintf(format, args...)) }

// apiErrors says what the Twilio API errors a send may get mean, as the
// XMPP condition and a sentence for the user. %s is the recipient.
var apiErrors = map[int]struct {
	cond string
	text string
}{
	21211: {bridge.JIDMalformed, "Twilio says %s is not a valid phone number (error 21211), so the text was not sent."},
	21408: {bridge.NotAllowed, "Texts to %s's country are not enabled on this gateway's Twilio account (error 21408); ask the administrator."},
	21610: {bridge.Forbidden, "%s has unsubscribed from this number (they replied STOP; error 21610): nothing can be sent to them until they text START."},
	21612: {bridge.NotAllowed, "Twilio cannot send from this gateway's number to %s (error 21612)."},
	21614: {bridge.NotAcceptable, "%s is not a mobile number and cannot receive texts (error 21614)."},
	21606: {bridge.ServiceUnavailable, "The gateway's sending number cannot text %s (error 21606); the administrator must check the number in Twilio."},
	21617: {bridge.NotAcceptable, "The text is longer than Twilio accepts (1,600 characters; error 21617)."},
	21623: {bridge.NotAcceptable, "Too many attachments for one MMS (error 21623)."},
	21620: {bridge.NotAcceptable, "An attachment URL was refused by Twilio (error 21620)."},
	20003: {bridge.InternalServerError, "The gateway's Twilio credentials were refused (error 20003); tell the administrator."},
	30007: {bridge.PolicyViolation, "The carrier of %s filtered the text as spam (error 30007)."},
}

// deliveryErrors say what the ErrorCode of an undelivered or failed
// status callback means.
var deliveryErrors = map[int]struct {
	cond string
	text string
}{
	30001: {bridge.ResourceConstraint, "Twilio's queue for this number overflowed (error 30001); the text to %s was not delivered."},
	30002: {bridge.ServiceUnavailable, "The gateway's Twilio account is suspended (error 30002); the text to %s was not delivered."},
	30003: {bridge.RecipientUnavailable, "%s is unreachable: the phone is off or out of coverage (error 30003). The text was not delivered."},
	30004: {bridge.Forbidden, "The text to %s was blocked: the recipient blocked it or cannot receive texts (error 30004)."},
	30005: {bridge.ItemNotFound, "%s is unknown to its carrier: the number may not exist any more (error 30005). The text was not delivered."},
	30006: {bridge.NotAcceptable, "%s is a landline or its carrier is unreachable (error 30006). The text was not delivered."},
	30007: {bridge.PolicyViolation, "The carrier of %s filtered the text as spam (error 30007). It was not delivered."},
	30008: {bridge.UndefinedCondition, "The text to %s was not delivered for an unknown reason (error 30008)."},
	30019: {bridge.NotAcceptable, "The attachments of the text to %s are larger than the carrier accepts (error 30019)."},
	11751: {bridge.NotAcceptable, "The attachments of the text to %s are larger than Twilio accepts (5 MB; error 11751)."},
	30034: {bridge.PolicyViolation, "The text to %s was blocked because the sending number is not registered for A2P 10DLC (error 30034)."},
}

// apiError turns a Twilio API error code into a stanza error.
func apiError(code int, to, msg string) *bridge.StanzaError {
	if e, ok := apiErrors[code]; ok {
		return bridge.Errorf(e.cond, e.text, withTo(e.text, to)...)
	}
	return bridge.Errorf(bridge.UndefinedCondition, "Twilio refused the text to %s (error %d: %s).", to, code, msg)
}

// deliveryError turns the ErrorCode of a status callback into a stanza error.
func deliveryError(status string, code int, to string) *bridge.StanzaError {
	if e, ok := deliveryErrors[code]; ok {
		return bridge.Errorf(e.cond, e.text, withTo(e.text, to)...)
	}
	if code == 0 {
		return bridge.Errorf(bridge.RecipientUnavailable, "The text to %s was %s, with no reason given.", to, status)
	}
	return bridge.Errorf(bridge.UndefinedCondition, "The text to %s was %s (error %d).", to, status, code)
}

func withTo(format, to string) []any {
	n := 0
	for i := 0; i+1 < len(format); i++ {
		if format[i] == '%' && format[i+1] == 's' {
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return []any{to}
}
