package main

// The OCI image: the full bundle's files in the places the .deb installs them, on an empty base
// (the binaries are static and carry their own CA roots and zoneinfo), for every linux target,
// as one image index in an OCI image layout, shipped as a tar (what `skopeo copy oci-archive:`
// and `podman load` read). go-containerregistry writes the layout: no Docker daemon, and no
// hand-made manifests, digests or media types.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/certfleet/certfleet/core/pluginhost"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// The image's user: 65532 is the "nonroot" id distroless and ko images use, so volumes prepared
// for those fit this one.
const (
	imageUID  = 65532
	imageUser = "certfleet"
	stateDir  = "/var/lib/certfleet"
	logDir    = "/var/log/certfleet"
	configDir = "/etc/certfleet"
	// imagePins: the image's plugins come pinned (by the image's own build), outside the state
	// volume, so a new image with new plugins is trusted as it is, never refused.
	imagePins = "/usr/lib/certfleet/plugins.lock.json"
	// The source repository (the packages' homepage).
	sourceURL = "https://github.com/certfleet/certfleet"
)

// imagePlatform is one linux target's files for the image.
type imagePlatform struct {
	arch  string
	files []installed
}

// imageArchive names the release's image file.
func imageArchive(version string) string { return fmt.Sprintf("certfleet_%s_oci.tar", version) }

// ociImage writes the OCI image of every linux target built.
func (r *release) ociImage() error {
	if len(r.imagePlatforms) == 0 {
		return nil
	}
	start := time.Now()
	labels := r.imageLabels()
	base, err := r.layer(baseEntries())
	if err != nil {
		return fmt.Errorf("image base layer: %w", err)
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range r.imagePlatforms {
		img, err := r.platformImage(p, base, labels)
		if err != nil {
			return fmt.Errorf("image linux/%s: %w", p.arch, err)
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "linux", Architecture: p.arch}}})
	}
	idx = mutate.Annotations(idx, labels).(v1.ImageIndex)
	dir := filepath.Join(r.out, ".build", "oci")
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	lp, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	// The tag skopeo, podman and crane show for the image in the layout.
	if err := lp.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": r.version})); err != nil {
		return fmt.Errorf("write OCI layout: %w", err)
	}
	var buf bytes.Buffer
	if err := r.tarDir(&buf, dir); err != nil {
		return fmt.Errorf("OCI archive: %w", err)
	}
	if err := r.emit(imageArchive(r.version), buf.Bytes()); err != nil {
		return err
	}
	digest, err := idx.Digest()
	if err != nil {
		return err
	}
	log.Printf("image index %s (%d platforms) in %s", digest, len(r.imagePlatforms), time.Since(start).Round(time.Second))
	return nil
}

// commitRevision is HEAD's commit id, read with the commit time so the two agree.
func commitRevision() string {
	out, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		log.Printf("warning: commit (git rev-parse HEAD): %v: the image has no revision label", err)
		return ""
	}
	return strings.TrimSpace(string(out))
}

// imageLabels are the OCI annotation keys, as config labels and as index annotations. There is no
// licenses label: the repository has no LICENSE yet, and its SPDX id is the owner's choice.
func (r *release) imageLabels() map[string]string {
	labels := map[string]string{
		"org.opencontainers.image.title":       "certfleet",
		"org.opencontainers.image.description": "keeps TLS certificates alive on network appliances; every device plugin included",
		"org.opencontainers.image.version":     r.version,
		"org.opencontainers.image.created":     r.mtime.Format(time.RFC3339),
		"org.opencontainers.image.source":      sourceURL,
		"org.opencontainers.image.url":         sourceURL,
	}
	if r.revision != "" {
		labels["org.opencontainers.image.revision"] = r.revision
	}
	return labels
}

func (r *release) platformImage(p imagePlatform, base v1.Layer, labels map[string]string) (v1.Image, error) {
	pins := map[string]pluginhost.Pin{}
	for _, f := range p.files {
		if name, ok := pluginhost.PluginName(path.Base(f.dst)); ok && path.Dir(f.dst) == pluginDir {
			pins[name] = pluginhost.Pin{SHA256: sha256Hex(f.data), Path: f.dst, PinnedAt: r.mtime}
		}
	}
	pinsFile, err := pluginhost.FormatPins(pins)
	if err != nil {
		return nil, err
	}
	files := append(append([]installed(nil), p.files...), installed{dst: imagePins, data: pinsFile, mode: 0o644})
	app, err := r.layer(layerEntries(files, nil))
	if err != nil {
		return nil, fmt.Errorf("certfleet layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	created := v1.Time{Time: r.mtime}
	img, err = mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{Created: created,
			CreatedBy: "certfleet dist: user " + imageUser + " (" + strconv.Itoa(imageUID) + "), its state, log and configuration directories"}},
		mutate.Addendum{Layer: app, MediaType: types.OCILayer, History: v1.History{Created: created,
			CreatedBy: "certfleet dist: certfleet " + r.version + " and every plugin, as the .deb installs them"}})
	if err != nil {
		return nil, err
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = created
	cfg.OS, cfg.Architecture = "linux", p.arch
	cfg.Config = v1.Config{
		User:       fmt.Sprintf("%d:%d", imageUID, imageUID),
		Entrypoint: []string{"/usr/bin/certfleet"},
		// The configuration is /etc/certfleet (certfleet's default): a mounted directory of *.yaml.
		Cmd:        []string{"daemon"},
		WorkingDir: stateDir,
		Env: []string{
			"PATH=/usr/bin",
			"HOME=" + stateDir,
			// certfleet's default state directory for a non-root user is $XDG_STATE_HOME/certfleet:
			// this makes it /var/lib/certfleet, the volume, as it is for root elsewhere.
			"XDG_STATE_HOME=" + path.Dir(stateDir),
			"CERTFLEET_PINS_FILE=" + imagePins,
		},
		// The state database holds orders placed and certificates paid for: kept apart from the
		// container even when nobody mounts a volume.
		Volumes:      map[string]struct{}{stateDir: {}},
		ExposedPorts: map[string]struct{}{"9720/tcp": {}}, // daemon.listen's /metrics and /healthz
		StopSignal:   "SIGTERM",                           // the daemon stops at a safe point
		Labels:       labels,
	}
	return mutate.ConfigFile(img, cfg)
}

// layer is a gzip-compressed OCI layer of these entries, compressed once. The default level: best
// compression took 2.5 times as long for 0.8% less.
func (r *release) layer(entries []layerEntry) (v1.Layer, error) {
	var buf bytes.Buffer
	if err := r.writeLayerTar(&buf, entries); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer), tarball.WithCompressionLevel(gzip.DefaultCompression), tarball.WithCompressedCaching)
}

// layerEntry is one file or directory of a layer.
type layerEntry struct {
	name     string // relative to /, directories end in /
	data     []byte
	mode     fs.FileMode
	uid, gid int
}

// baseEntries: the user and group, name resolution as on a host (/etc/hosts first), and the
// directories the user writes: state (0700, its own), logs, /tmp. The same for every platform.
func baseEntries() []layerEntry {
	uid := strconv.Itoa(imageUID)
	files := []installed{
		{dst: "/etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\n" +
			imageUser + ":x:" + uid + ":" + uid + ":certfleet:" + stateDir + ":/sbin/nologin\n")},
		{dst: "/etc/group", mode: 0o644, data: []byte("root:x:0:\n" + imageUser + ":x:" + uid + ":\n")},
		{dst: "/etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
	}
	return layerEntries(files, []string{stateDir, logDir, configDir, "/tmp"})
}

// dirEntry is a directory with the owner and mode the image gives it: the user's own state and
// logs; the configuration readable by the user's group only (as the packages' postinstall does).
func dirEntry(dir string) layerEntry {
	e := layerEntry{name: strings.TrimPrefix(dir, "/") + "/", mode: fs.ModeDir | 0o755}
	switch dir {
	case stateDir:
		e.mode, e.uid, e.gid = fs.ModeDir|0o700, imageUID, imageUID
	case logDir:
		e.mode, e.uid, e.gid = fs.ModeDir|0o750, imageUID, imageUID
	case configDir:
		e.mode, e.gid = fs.ModeDir|0o750, imageUID
	case "/tmp":
		e.mode = fs.ModeDir | fs.ModeSticky | 0o777
	}
	return e
}

// layerEntries are the files and directories with every parent directory, sorted; files in
// /etc/certfleet belong to the user's group (root owns them: the user reads its configuration,
// never rewrites it).
func layerEntries(files []installed, dirs []string) []layerEntry {
	var entries []layerEntry
	seen := map[string]bool{}
	addDirs := func(d string) {
		for ; d != "/" && !seen[d]; d = path.Dir(d) {
			seen[d] = true
			entries = append(entries, dirEntry(d))
		}
	}
	for _, d := range dirs {
		addDirs(d)
	}
	for _, f := range files {
		e := layerEntry{name: strings.TrimPrefix(f.dst, "/"), data: f.data, mode: f.mode}
		if strings.HasPrefix(f.dst, configDir+"/") {
			e.gid = imageUID
		}
		entries = append(entries, e)
		addDirs(path.Dir(f.dst))
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].name < entries[j].name })
	return entries
}

func (r *release) writeLayerTar(w io.Writer, entries []layerEntry) error {
	tw := tar.NewWriter(w)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: int64(e.mode.Perm()), Uid: e.uid, Gid: e.gid, ModTime: r.mtime,
			Typeflag: tar.TypeReg, Size: int64(len(e.data)), Format: tar.FormatPAX}
		if e.mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000 // c_ISVTX
		}
		if e.mode.IsDir() {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(e.data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// tarDir writes the OCI layout directory as a tar (an oci-archive): sorted, the commit's time,
// root's files.
func (r *release) tarDir(w io.Writer, dir string) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		h := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, Typeflag: tar.TypeReg, ModTime: r.mtime,
			Uname: "root", Gname: "root", Format: tar.FormatPAX}
		if d.IsDir() {
			h.Name, h.Mode, h.Typeflag = h.Name+"/", 0o755, tar.TypeDir
			return tw.WriteHeader(h)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		h.Size = int64(len(data))
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err = tw.Write(data)
		return err
	})
	if err != nil {
		return err
	}
	return tw.Close()
}
