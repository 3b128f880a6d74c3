// Command imagecheck checks the release's OCI image (certfleet_<version>_oci.tar) with no container
// runtime: it reads the OCI layout with go-containerregistry, verifies every blob against its
// digest, checks the platforms, the non-root user and the labels, and can unpack one platform's
// filesystem into an empty directory (for `make dist-check` to run the binaries from it).
//
// It prints what the shell needs, one "key value" line each: digest, platform, user, entrypoint,
// cmd, env (one line per variable), label.
package main

import (
	"archive/tar"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

func main() {
	log.SetFlags(0)
	log.SetPrefix("imagecheck: ")
	archive := flag.String("archive", "", "the OCI archive (certfleet_<version>_oci.tar)")
	platforms := flag.String("platforms", "", "the platforms the index must hold, exactly (os/arch,...; empty: any)")
	version := flag.String("version", "", "the version its labels must carry (empty: any)")
	unpack := flag.String("unpack", "", "unpack this platform's filesystem (os/arch=DIR; DIR must not exist)")
	flag.Parse()
	if *archive == "" {
		log.Fatal("-archive is required")
	}
	if err := check(*archive, *platforms, *version, *unpack); err != nil {
		log.Fatalf("%s: %v", *archive, err)
	}
}

func check(archive, wantPlatforms, wantVersion, unpack string) error {
	dir, err := os.MkdirTemp("", "imagecheck-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := untar(archive, dir, false); err != nil {
		return fmt.Errorf("read the archive: %w", err)
	}
	top, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		return fmt.Errorf("not an OCI image layout: %w", err)
	}
	topManifest, err := top.IndexManifest()
	if err != nil {
		return err
	}
	if len(topManifest.Manifests) != 1 || topManifest.Manifests[0].MediaType != types.OCIImageIndex {
		return fmt.Errorf("index.json should name one image index, names %d manifest(s)", len(topManifest.Manifests))
	}
	ref := topManifest.Manifests[0]
	if wantVersion != "" && ref.Annotations["org.opencontainers.image.ref.name"] != wantVersion {
		return fmt.Errorf("index.json: ref.name %q, want %q", ref.Annotations["org.opencontainers.image.ref.name"], wantVersion)
	}
	idx, err := top.ImageIndex(ref.Digest)
	if err != nil {
		return err
	}
	// Every manifest, config and layer against its digest, size and diff id.
	if err := validate.Index(idx); err != nil {
		return fmt.Errorf("the image does not verify: %w", err)
	}
	fmt.Printf("digest %s\n", ref.Digest)
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	var got []string
	images := map[string]v1.Image{}
	for _, desc := range im.Manifests {
		if desc.Platform == nil {
			return fmt.Errorf("manifest %s has no platform", desc.Digest)
		}
		platform := desc.Platform.OS + "/" + desc.Platform.Architecture
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return err
		}
		if err := checkImage(img, desc.Platform, wantVersion); err != nil {
			return fmt.Errorf("%s: %w", platform, err)
		}
		size, err := compressedSize(img)
		if err != nil {
			return err
		}
		fmt.Printf("platform %s %s %.1f MB\n", platform, desc.Digest, float64(size)/1e6)
		got = append(got, platform)
		images[platform] = img
	}
	slices.Sort(got)
	if wantPlatforms != "" {
		want := strings.Split(wantPlatforms, ",")
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return fmt.Errorf("platforms %v, want %v", got, want)
		}
	}
	if unpack == "" {
		return nil
	}
	platform, dest, ok := strings.Cut(unpack, "=")
	img := images[platform]
	if !ok || img == nil {
		return fmt.Errorf("-unpack %q: want os/arch=DIR with a platform of the index (%v)", unpack, got)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	fmt.Printf("user %s\n", cfg.Config.User)
	fmt.Printf("entrypoint %s\n", strings.Join(cfg.Config.Entrypoint, " "))
	fmt.Printf("cmd %s\n", strings.Join(cfg.Config.Cmd, " "))
	for _, e := range cfg.Config.Env {
		fmt.Printf("env %s\n", e)
	}
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("-unpack: %s exists; give a new directory", dest)
	}
	flat := mutate.Extract(img)
	defer flat.Close()
	return unpackTar(flat, dest, os.Geteuid() == 0)
}

// checkImage: the platform's config, a numeric non-root user (what Kubernetes' runAsNonRoot can
// check), the entrypoint, the labels.
func checkImage(img v1.Image, platform *v1.Platform, wantVersion string) error {
	mt, err := img.MediaType()
	if err != nil {
		return err
	}
	if mt != types.OCIManifestSchema1 {
		return fmt.Errorf("manifest media type %s, want %s", mt, types.OCIManifestSchema1)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return err
	}
	if cfg.OS != platform.OS || cfg.Architecture != platform.Architecture {
		return fmt.Errorf("config is for %s/%s", cfg.OS, cfg.Architecture)
	}
	uid, gid, ok := strings.Cut(cfg.Config.User, ":")
	n, err := strconv.Atoi(uid)
	if err != nil || n <= 0 || (ok && gid == "") {
		return fmt.Errorf("config User %q: want a numeric user other than root (uid:gid)", cfg.Config.User)
	}
	if len(cfg.Config.Entrypoint) == 0 || cfg.Config.Entrypoint[0] != "/usr/bin/certfleet" {
		return fmt.Errorf("entrypoint %q, want /usr/bin/certfleet", cfg.Config.Entrypoint)
	}
	labels := cfg.Config.Labels
	for _, key := range []string{"version", "created", "source", "revision"} {
		if labels["org.opencontainers.image."+key] == "" {
			return fmt.Errorf("no label org.opencontainers.image.%s", key)
		}
	}
	if wantVersion != "" && labels["org.opencontainers.image.version"] != wantVersion {
		return fmt.Errorf("version label %q, want %q", labels["org.opencontainers.image.version"], wantVersion)
	}
	if created := cfg.Created.UTC().Format("2006-01-02T15:04:05Z07:00"); labels["org.opencontainers.image.created"] != created {
		return fmt.Errorf("created label %q, config created %s", labels["org.opencontainers.image.created"], created)
	}
	return nil
}

func compressedSize(img v1.Image) (int64, error) {
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return 0, err
		}
		total += n
	}
	return total, nil
}

func untar(archive, dest string, owners bool) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	return unpackTar(f, dest, owners)
}

// unpackTar writes a tar's directories and regular files under dest with their modes (and, with
// owners, their uid/gid); any other kind of entry, or a name leaving dest, is an error.
func unpackTar(r io.Reader, dest string, owners bool) error {
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(strings.TrimPrefix(h.Name, "/")))
		if name == "." {
			continue
		}
		if !filepath.IsLocal(name) {
			return fmt.Errorf("entry %q leaves the directory", h.Name)
		}
		target := filepath.Join(dest, name)
		mode := h.FileInfo().Mode()
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o700); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return err
			}
			out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
			if err != nil {
				return err
			}
			_, err = io.Copy(out, tr)
			if cerr := out.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		default:
			return fmt.Errorf("entry %q: type %q is not a file or directory", h.Name, h.Typeflag)
		}
		if err := os.Chmod(target, mode.Perm()|mode&(os.ModeSticky|os.ModeSetuid|os.ModeSetgid)); err != nil {
			return err
		}
		if owners {
			if err := os.Lchown(target, h.Uid, h.Gid); err != nil {
				return err
			}
		}
	}
}
