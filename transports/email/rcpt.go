package email

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/emersion/go-smtp"
)

// A mail to several recipients: go-smtp's Client.SendMail gives up at
// the first refused RCPT (and leaves the transaction open), so that one
// refused address would stop the mail to everyone. transact instead
// offers every recipient, sends the mail to those accepted, and reports
// the others: a 5xx refusal is final for that recipient (the user is
// told which one, and that the mail went to the rest), a 4xx is retried
// later for that recipient only. Which recipients are finished is kept in
// the store (state "outdone:<queue id>") between attempts, so a retry
// never mails anyone twice.

// refusal is one recipient the server refused for good.
type refusal struct {
	Rcpt  string `json:"rcpt"`
	Reply string `json:"reply"` // "550 5.1.1 text"
}

// rcptResult is the outcome of one SMTP transaction.
type rcptResult struct {
	Accepted []string  // the mail went to these (after DATA's 250)
	Refused  []refusal // 5xx at RCPT
	Deferred []string  // 4xx at RCPT: try again later
	Why      string    // the last 4xx reply, for the queue's last error
}

func smtpReply(se *smtp.SMTPError) string {
	return fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], strings.TrimSpace(se.Message))
}

// transact sends one mail to rcpts over c. An error means nothing was
// sent (MAIL, DATA or the connection failed; an *smtp.SMTPError when the
// server said so); recipients refused at RCPT are in the result. When
// every recipient was refused or deferred, no DATA is sent and the
// transaction is reset.
func transact(c *smtp.Client, from string, rcpts []string, raw []byte) (rcptResult, error) {
	var res rcptResult
	var opts *smtp.MailOptions
	if !isASCII(from) || !allASCII(rcpts) {
		opts = &smtp.MailOptions{UTF8: true}
	}
	if err := c.Mail(from, opts); err != nil {
		return res, err
	}
	var ok []string
	for _, r := range rcpts {
		err := c.Rcpt(r, nil)
		if err == nil {
			ok = append(ok, r)
			continue
		}
		var se *smtp.SMTPError
		if !errors.As(err, &se) {
			return res, err // the connection: nothing was sent
		}
		if se.Code >= 500 {
			res.Refused = append(res.Refused, refusal{Rcpt: r, Reply: smtpReply(se)})
		} else {
			res.Deferred = append(res.Deferred, r)
			res.Why = smtpReply(se)
		}
	}
	if len(ok) == 0 {
		if err := c.Reset(); err != nil {
			return res, err
		}
		return res, nil
	}
	w, err := c.Data()
	if err != nil {
		return res, err
	}
	if _, err := w.Write(raw); err != nil {
		return res, err
	}
	if err := w.Close(); err != nil {
		return res, err
	}
	res.Accepted = ok
	return res, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func allASCII(l []string) bool {
	for _, s := range l {
		if !isASCII(s) {
			return false
		}
	}
	return true
}

// outDone is what earlier attempts finished of one queued mail.
type outDone struct {
	Sent    []string  `json:"sent,omitempty"`
	Refused []refusal `json:"refused,omitempty"`
}

func outDoneKey(id int64) string { return fmt.Sprintf("outdone:%d", id) }

func (t *Transport) getOutDone(ctx context.Context, user string, id int64) (outDone, error) {
	var d outDone
	b, err := t.st.GetState(ctx, user, "email", outDoneKey(id))
	if err != nil || len(b) == 0 {
		return d, nil // none yet (ErrNotFound) or already cleared
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, fmt.Errorf("reading the progress of a mail: %w", err)
	}
	return d, nil
}

func (t *Transport) putOutDone(ctx context.Context, user string, id int64, d outDone) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	return t.st.PutState(ctx, user, "email", outDoneKey(id), b)
}

// clearOutDone deletes the progress record of a finished mail.
func (t *Transport) clearOutDone(ctx context.Context, user string, id int64) {
	if err := t.st.DeleteState(ctx, user, "email", outDoneKey(id)); err != nil {
		t.log.Warn("clearing the progress of a mail failed", "user", user, "err", err)
	}
}

// remaining is rcpts without those done already.
func (d outDone) remaining(rcpts []string) []string {
	done := map[string]bool{}
	for _, s := range d.Sent {
		done[strings.ToLower(s)] = true
	}
	for _, r := range d.Refused {
		done[strings.ToLower(r.Rcpt)] = true
	}
	var out []string
	for _, r := range rcpts {
		if !done[strings.ToLower(r)] {
			out = append(out, r)
		}
	}
	return out
}
