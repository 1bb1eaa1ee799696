// Package images bakes releases into local images and keeps them. An image is a
// content-addressed directory: the application, the baked components, their unit
// definitions, an SBOM, and image.json, whose digest covers every byte of the rest.
// The same recipe always bakes to the same digest, byte for byte.
package images

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// SchemaVersion is the version of the image.json format.
const SchemaVersion = 1

// Meta is image.json.
type Meta struct {
	SchemaVersion int    `json:"schemaVersion"`
	Name          string `json:"name"`
	Version       string `json:"version"`
	// Digest is "sha256:" + the hex sha256 of this document encoded with Digest empty.
	// The document lists every other file with its sha256, so the digest covers them.
	Digest     string      `json:"digest"`
	App        Binary      `json:"app"`
	Components []Component `json:"components"`
	// Ports are the named ports the units need besides the application's own.
	Ports []string `json:"ports"`
	// Init is kiln-boot, the instance's init; images baked before it was baked in have none.
	Init  *Binary `json:"init,omitempty"`
	Files []File  `json:"files"`
}

// SBOMFile is the image's CycloneDX SBOM, at its root.
const SBOMFile = "sbom.cdx.json"

// InitName is the name of the init's binary in an image's bin/.
const InitName = "kiln-boot"

// AppUnit is the name of the app's unit; a component cannot have it.
const AppUnit = "app"

// Binary is one executable in the image.
type Binary struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// Source is the Go package it was built from, or the prebuilt binary's file name.
	Source string `json:"source"`
}

// Component is a baked component: its catalog version and its binary.
type Component struct {
	Binary
	Version string `json:"version"`
}

// File is one entry of the image's canonical listing.
type File struct {
	Path   string      `json:"path"`
	Mode   os.FileMode `json:"mode"`
	Size   int64       `json:"size"`
	SHA256 string      `json:"sha256"`
}

// Unit is one process of an instance, as `kiln boot` runs it (units/<name>.json).
type Unit struct {
	Name string `json:"name"`
	// Command is relative to the image directory.
	Command  string            `json:"command"`
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	Restart  string            `json:"restart"`
	Mode     string            `json:"mode"`
	Schedule string            `json:"schedule"`
}

// Image is a baked image in a store.
type Image struct {
	Meta
	// Dir is the image directory.
	Dir string
	// RecipeKey is the key of the recipe a bake made or found the image by; empty for an
	// image read with Get.
	RecipeKey string
}

// computeDigest returns the digest of m: the sha256 of its JSON with Digest empty.
func computeDigest(m Meta) (string, error) {
	m.Digest = ""
	b, err := json.Marshal(m)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// checkDigest refuses anything but "sha256:" and 64 lowercase hex digits. A digest read
// from a file (the index, a recipe key, a deployment) becomes a directory name of the
// store, which the GC removes: nothing else may reach filepath.Join.
func checkDigest(digest string) error {
	hexPart, ok := strings.CutPrefix(digest, "sha256:")
	if !ok || len(hexPart) != 64 || strings.Trim(hexPart, "0123456789abcdef") != "" {
		return fmt.Errorf("image %q: not a sha256 digest", digest)
	}
	return nil
}

// dirName is the store directory name of a digest that passed checkDigest.
func dirName(digest string) string {
	return "sha256-" + digest[len("sha256:"):]
}

// ReadMeta reads and checks the image.json of an image directory: the digest must be the
// one its content gives.
func ReadMeta(dir string) (Meta, error) {
	var m Meta
	b, err := os.ReadFile(filepath.Join(dir, "image.json"))
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", filepath.Join(dir, "image.json"), err)
	}
	d, err := computeDigest(m)
	if err != nil {
		return m, err
	}
	if d != m.Digest {
		return m, fmt.Errorf("image %s: image.json was altered (its content digests to %s)", dir, d)
	}
	return m, nil
}

// Verify re-hashes the image in dir against its image.json: every listed file present
// with its mode, size and sha256, and no file it does not list. want, if not empty, is the
// digest the image must have (the one a deployment recorded).
func Verify(dir, want string) error {
	m, err := ReadMeta(dir)
	if err != nil {
		return err
	}
	if want != "" && m.Digest != want {
		return fmt.Errorf("image at %s is %s, want %s", dir, m.Digest, want)
	}
	got, err := listing(dir)
	if err != nil {
		return fmt.Errorf("image %s: %w", m.Digest, err)
	}
	listed := map[string]File{}
	for _, f := range m.Files {
		listed[f.Path] = f
	}
	for _, f := range got {
		l, ok := listed[f.Path]
		switch {
		case !ok:
			return fmt.Errorf("image %s: %s was added since it was baked", m.Digest, f.Path)
		case l.SHA256 != f.SHA256 || l.Size != f.Size:
			return fmt.Errorf("image %s: %s changed since it was baked", m.Digest, f.Path)
		case l.Mode != f.Mode:
			return fmt.Errorf("image %s: %s changed mode since it was baked (%v, baked %v)", m.Digest, f.Path, f.Mode, l.Mode)
		}
		delete(listed, f.Path)
	}
	for p := range listed {
		return fmt.Errorf("image %s: %s is missing", m.Digest, p)
	}
	return nil
}
