package component

import (
	"switchboard/bridge"
)

// appendForm appends a XEP-0004 data form. formType, when set, is added
// as a hidden FORM_TYPE field unless the form has one.
func appendForm(b []byte, f *bridge.Form, formType string) []byte {
	typ := f.Type
	if typ == "" {
		typ = "form"
	}
	b = append(b, "<x xmlns='jabber:x:data'"...)
	b = attr(b, "type", typ)
	b = append(b, '>')
	if f.Title != "" {
		b = textElem(b, "title", "", f.Title)
	}
	if f.Instructions != "" {
		b = textElem(b, "instructions", "", f.Instructions)
	}
	if formType != "" && !hasField(f.Fields, "FORM_TYPE") {
		b = append(b, "<field var='FORM_TYPE' type='hidden'>"...)
		b = textElem(b, "value", "", formType)
		b = append(b, "</field>"...)
	}
	for i := range f.Fields {
		b = appendField(b, &f.Fields[i], true)
	}
	if len(f.Reported) > 0 {
		b = append(b, "<reported>"...)
		for i := range f.Reported {
			rf := f.Reported[i]
			rf.Values = nil
			rf.Options = nil
			b = appendField(b, &rf, true)
		}
		b = append(b, "</reported>"...)
		for _, item := range f.Items {
			b = append(b, "<item>"...)
			for i := range item {
				b = appendField(b, &item[i], false)
			}
			b = append(b, "</item>"...)
		}
	}
	return append(b, "</x>"...)
}

func hasField(fs []bridge.FormField, name string) bool {
	for _, f := range fs {
		if f.Var == name {
			return true
		}
	}
	return false
}

// appendField appends one <field/>; full adds type, label, desc, required
// and options (item rows carry only var and values).
func appendField(b []byte, f *bridge.FormField, full bool) []byte {
	b = append(b, "<field"...)
	b = attr(b, "var", f.Var)
	if full {
		b = attr(b, "type", f.Type)
		b = attr(b, "label", f.Label)
	}
	b = append(b, '>')
	if full {
		if f.Desc != "" {
			b = textElem(b, "desc", "", f.Desc)
		}
		if f.Required {
			b = append(b, "<required/>"...)
		}
	}
	for _, v := range f.Values {
		b = textElem(b, "value", "", v)
	}
	if full {
		for _, opt := range f.Options {
			b = append(b, "<option"...)
			b = attr(b, "label", opt.Label)
			b = append(b, '>')
			b = textElem(b, "value", "", opt.Value)
			b = append(b, "</option>"...)
		}
	}
	return append(b, "</field>"...)
}

// parseForm reads a submitted data form: its type and values by var
// (FORM_TYPE included). ok is false when x is not a data form.
func parseForm(t *tree, x *node) (typ string, values bridge.FormValues, ok bool) {
	if x == nil || x.local != "x" || x.space != nsData {
		return "", nil, false
	}
	values = bridge.FormValues{}
	t.children(x, func(f *node) bool {
		if f.local != "field" || f.space != nsData {
			return true
		}
		name := f.attrValue("var")
		if name == "" {
			return true
		}
		vs := values[name]
		if vs == nil {
			vs = []string{}
		}
		t.children(f, func(v *node) bool {
			if v.local == "value" && v.space == nsData {
				vs = append(vs, v.text)
			}
			return true
		})
		values[name] = vs
		return true
	})
	return x.attrValue("type"), values, true
}
