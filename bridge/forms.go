package bridge

// Form is a XEP-0004 data form in neutral form.
type Form struct {
	Type         string // "form", "submit", "result", "cancel"
	Title        string
	Instructions string
	Fields       []FormField
	// Reported and Items make a multi-item result table (type "result").
	Reported []FormField
	Items    [][]FormField
}

// Field types of XEP-0004.
const (
	FieldBoolean     = "boolean"
	FieldFixed       = "fixed"
	FieldHidden      = "hidden"
	FieldJIDMulti    = "jid-multi"
	FieldJIDSingle   = "jid-single"
	FieldListMulti   = "list-multi"
	FieldListSingle  = "list-single"
	FieldTextMulti   = "text-multi"
	FieldTextPrivate = "text-private"
	FieldTextSingle  = "text-single"
)

// FormField is one field of a Form.
type FormField struct {
	Var      string
	Type     string
	Label    string
	Desc     string
	Required bool
	Values   []string
	Options  []FormOption
}

// FormOption is one choice of a list field.
type FormOption struct {
	Label string
	Value string
}

// FormValues are the values of a submitted form, by field var.
type FormValues map[string][]string

// Get returns the first value of a field, or "".
func (v FormValues) Get(name string) string {
	if vs := v[name]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Has reports whether the field was submitted at all.
func (v FormValues) Has(name string) bool {
	_, ok := v[name]
	return ok
}

// Bool returns a boolean field's value ("1"/"true" are true).
func (v FormValues) Bool(name string) bool {
	s := v.Get(name)
	return s == "1" || s == "true"
}

// FieldValue is the Values of a form field holding v: none when v is
// empty (the field is shown blank).
func FieldValue(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// BoolValue is a boolean field's value as XEP-0004 writes it.
func BoolValue(b bool) string {
	if b {
		return "1"
	}
	return "0"
}
