package sms

import "strings"

// Twilio's default opt-out keywords: Twilio itself answers them and then
// blocks (or unblocks) texts from the number to the sender; the text still
// comes to the webhook. The gateway delivers it and says what it means.
var (
	optOutWords = []string{"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"}
	optInWords  = []string{"START", "YES", "UNSTOP"}
	helpWords   = []string{"HELP", "INFO"}
)

// optOutNote returns the sentence that explains an opt-out keyword, or "".
func optOutNote(body, from string) string {
	w := strings.ToUpper(strings.TrimSpace(body))
	has := func(list []string) bool {
		for _, k := range list {
			if w == k {
				return true
			}
		}
		return false
	}
	switch {
	case has(optOutWords):
		return "(" + from + " has unsubscribed: Twilio now refuses texts to them from this number until they text START.)"
	case has(optInWords):
		return "(" + from + " has subscribed again: texts to them go through.)"
	case has(helpWords):
		return "(" + from + " asked for help; Twilio answered them with the number's help message.)"
	}
	return ""
}
