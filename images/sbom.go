package images

import (
	"debug/buildinfo"
	"encoding/json"
	"path/filepath"
	"sort"
)

// The SBOM is CycloneDX 1.5 JSON: the application, each baked component with its hash,
// and the Go modules compiled into each binary (read from the binaries' build info).
// It carries no timestamp or serial number, so the same image has the same SBOM.

type cdxBOM struct {
	BOMFormat   string         `json:"bomFormat"`
	SpecVersion string         `json:"specVersion"`
	Version     int            `json:"version"`
	Metadata    cdxMetadata    `json:"metadata"`
	Components  []cdxComponent `json:"components"`
}

type cdxMetadata struct {
	Component cdxComponent `json:"component"`
}

type cdxComponent struct {
	BOMRef  string    `json:"bom-ref,omitempty"`
	Type    string    `json:"type"`
	Name    string    `json:"name"`
	Version string    `json:"version,omitempty"`
	PURL    string    `json:"purl,omitempty"`
	Hashes  []cdxHash `json:"hashes,omitempty"`
}

type cdxHash struct {
	Alg     string `json:"alg"`
	Content string `json:"content"`
}

func sbomFor(root string, m Meta) ([]byte, error) {
	bom := cdxBOM{BOMFormat: "CycloneDX", SpecVersion: "1.5", Version: 1,
		Metadata: cdxMetadata{Component: cdxComponent{BOMRef: m.Name, Type: "application", Name: m.Name, Version: m.Version,
			Hashes: []cdxHash{{Alg: "SHA-256", Content: m.App.SHA256}}}}}
	mods := map[string]cdxComponent{}
	addModules := func(path string) {
		bi, err := buildinfo.ReadFile(filepath.Join(root, path))
		if err != nil {
			return // not a Go binary: nothing more to say about its insides
		}
		for _, d := range bi.Deps {
			if d.Replace != nil {
				d = d.Replace
			}
			ref := "pkg:golang/" + d.Path + "@" + d.Version
			mods[ref] = cdxComponent{BOMRef: ref, Type: "library", Name: d.Path, Version: d.Version, PURL: ref}
		}
	}
	addModules(m.App.Path)
	for _, c := range m.Components {
		bom.Components = append(bom.Components, cdxComponent{BOMRef: c.Name, Type: "application", Name: c.Name, Version: c.Version,
			Hashes: []cdxHash{{Alg: "SHA-256", Content: c.SHA256}}})
		addModules(c.Path)
	}
	if m.Init != nil {
		bom.Components = append(bom.Components, cdxComponent{BOMRef: m.Init.Name, Type: "application", Name: m.Init.Name,
			Hashes: []cdxHash{{Alg: "SHA-256", Content: m.Init.SHA256}}})
		addModules(m.Init.Path)
	}
	refs := make([]string, 0, len(mods))
	for r := range mods {
		refs = append(refs, r)
	}
	sort.Strings(refs)
	for _, r := range refs {
		bom.Components = append(bom.Components, mods[r])
	}
	if bom.Components == nil {
		bom.Components = []cdxComponent{}
	}
	b, err := json.MarshalIndent(bom, "", "  ")
	return append(b, '\n'), err
}
