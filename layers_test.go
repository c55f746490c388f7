package main

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLayering keeps the layers apart: a transport never imports another
// transport or component/, and mapping/ (the address core) and
// attachments/ import nothing of ours. Test files count too, except the
// end-to-end test bed a transport may start servers with.
func TestLayering(t *testing.T) {
	const module = "switchboard/"
	imports := func(dir string) map[string][]string { // import path → files
		out := map[string][]string{}
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && d.Name() == "testdata" {
				return filepath.SkipDir
			}
			if d.IsDir() || !strings.HasSuffix(p, ".go") {
				return nil
			}
			f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			for _, im := range f.Imports {
				path, _ := strconv.Unquote(im.Path.Value)
				out[path] = append(out[path], p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	transports, err := os.ReadDir("transports")
	if err != nil {
		t.Fatal(err)
	}
	if len(transports) == 0 {
		t.Fatal("no transports found: the test looks in the wrong place")
	}
	for _, tr := range transports {
		if !tr.IsDir() {
			continue
		}
		own := module + "transports/" + tr.Name()
		for path, files := range imports(filepath.Join("transports", tr.Name())) {
			switch {
			case path == module+"component" || strings.HasPrefix(path, module+"component/"):
				t.Errorf("%s imports %s: a transport talks to XMPP through bridge/ only", files[0], path)
			case strings.HasPrefix(path, module+"transports/") && path != own && !strings.HasPrefix(path, own+"/"):
				t.Errorf("%s imports %s: a transport never imports another transport", files[0], path)
			}
		}
	}
	for _, core := range []string{"mapping", "attachments"} {
		for path, files := range imports(core) {
			if strings.HasPrefix(path, module) && !strings.HasPrefix(path, module+core) {
				t.Errorf("%s imports %s: %s/ must import nothing of ours", files[0], path, core)
			}
		}
	}
}
