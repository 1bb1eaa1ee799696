package program

import (
	"encoding/json"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// The resource types of the images stack, as pulumi-aws names them.
const (
	typeBucket      = "aws:s3/bucketV2:BucketV2"
	typeAccessBlock = "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock"
	typeEncryption  = "aws:s3/bucketServerSideEncryptionConfigurationV2:BucketServerSideEncryptionConfigurationV2"
	typeObject      = "aws:s3/bucketObjectv2:BucketObjectv2"
	typeComponent   = "aws:imagebuilder/component:Component"
	typeRecipe      = "aws:imagebuilder/imageRecipe:ImageRecipe"
	typeDist        = "aws:imagebuilder/distributionConfiguration:DistributionConfiguration"
	typeInfra       = "aws:imagebuilder/infrastructureConfiguration:InfrastructureConfiguration"
	typeImage       = "aws:imagebuilder/image:Image"
	typeRole        = "aws:iam/role:Role"
	typeRolePolicy  = "aws:iam/rolePolicy:RolePolicy"
	typeAttachment  = "aws:iam/rolePolicyAttachment:RolePolicyAttachment"
	typeProfile     = "aws:iam/instanceProfile:InstanceProfile"
)

func testSettings() Settings {
	return Settings{
		Region:          modelRegion,
		Subnets:         []string{"subnet-0a", "subnet-0b"},
		InstanceType:    "t3.small",
		ParentImage:     "ssm:/aws/service/ami-amazon-linux-latest/al2023-ami-kernel-default-x86_64",
		Tags:            map[string]string{"team": "shop", "kiln:service": "overridden"},
		GracePeriodSecs: 90,
		LoadBalancer:    LoadBalancer{Scheme: "internet-facing", Port: 80},
	}
}

// testImage is an image whose payload and SBOM exist in dir.
func testImage(t *testing.T, dir, version string, seed byte) BakeImage {
	t.Helper()
	digest := "sha256:" + strings.Repeat(string("0123456789abcdef"[seed%16]), 60) + "beef"
	img := BakeImage{
		Digest: digest, Version: version, RecipeKey: "rk-" + version,
		Payload: filepath.Join(dir, version+".tar.gz"), PayloadSHA256: strings.Repeat("ab", 32),
		SBOM: filepath.Join(dir, version+".cdx.json"),
	}
	for _, p := range []string{img.Payload, img.SBOM} {
		if err := os.WriteFile(p, []byte(version), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func bakeInput(imgs ...BakeImage) BakeInput {
	return BakeInput{Service: "shop", Settings: testSettings(), Images: imgs}
}

func TestBakeDeclaresEachImageAndExportsItsAMI(t *testing.T) {
	dir := t.TempDir()
	a, b := testImage(t, dir, "1.0.0", 1), testImage(t, dir, "1.1.0", 2)
	m, out := run(t, Bake(bakeInput(a, b)), false)

	for _, img := range []BakeImage{a, b} {
		name := "shop-" + digestName(img.Digest)
		for _, typ := range []string{typeComponent, typeRecipe, typeDist, typeImage} {
			r := m.get(t, typ, name)
			wantTags := map[string]any{"team": "shop", TagService: "shop", TagVersion: img.Version, TagDigest: img.Digest, TagRecipeKey: img.RecipeKey}
			if got := r.in("tags"); !reflect.DeepEqual(got, wantTags) {
				t.Errorf("%s %s tags = %v, want %v", typ, name, got, wantTags)
			}
		}
		dist := m.get(t, typeDist, name).in("distributions").([]any)[0].(map[string]any)["amiDistributionConfiguration"].(map[string]any)
		if dist["amiTags"].(map[string]any)[TagDigest] != img.Digest {
			t.Errorf("the AMI of %s is not tagged with its digest: %v", img.Digest, dist["amiTags"])
		}
		recipe := m.get(t, typeRecipe, name)
		if recipe.str("parentImage") != testSettings().ParentImage {
			t.Errorf("recipe parent = %q", recipe.str("parentImage"))
		}
		comp := m.get(t, typeComponent, name).Outputs["arn"].StringValue()
		if got := recipe.in("components").([]any)[0].(map[string]any)["componentArn"]; got != comp {
			t.Errorf("recipe %s installs %v, want its component %s", name, got, comp)
		}
		payload := m.get(t, typeObject, name+"-payload")
		if payload.str("key") != "shop/"+strings.TrimPrefix(img.Digest, "sha256:")+"/image.tar.gz" {
			t.Errorf("payload key = %q", payload.str("key"))
		}
		if got := payload.in("metadata"); !reflect.DeepEqual(got, map[string]any{"sha256": img.PayloadSHA256}) {
			t.Errorf("payload metadata = %v", got)
		}
		if src := payload.Inputs["source"]; !src.IsAsset() || src.AssetValue().Path != img.Payload {
			t.Errorf("payload source = %v, want the file %s", src, img.Payload)
		}
		if src := m.get(t, typeObject, name+"-sbom").Inputs["source"]; !src.IsAsset() || src.AssetValue().Path != img.SBOM {
			t.Errorf("sbom source = %v, want the file %s", src, img.SBOM)
		}
	}

	// The AMI map holds what Image Builder made of each image, read from its outputs.
	wantAMIs := map[string]any{a.Digest: modelAMI("shop-" + digestName(a.Digest)), b.Digest: modelAMI("shop-" + digestName(b.Digest))}
	if !reflect.DeepEqual(out[OutputAMIs], wantAMIs) {
		t.Errorf("amis = %v, want %v", out[OutputAMIs], wantAMIs)
	}
	bucket := m.get(t, typeBucket, "shop-artifacts").Outputs["bucket"].StringValue()
	if out[OutputBucket] != bucket {
		t.Errorf("bucket output = %v, want %s", out[OutputBucket], bucket)
	}
	var kept []BakeImage
	if err := json.Unmarshal([]byte(out[OutputImages].(string)), &kept); err != nil {
		t.Fatal(err)
	}
	want := []BakeImage{a, b}
	for i := range want {
		want[i].Payload, want[i].SBOM = "", ""
	}
	if !reflect.DeepEqual(kept, want) {
		t.Errorf("images output = %+v, want %+v (no local paths)", kept, want)
	}

	// Every resource that takes tags carries the service's.
	for _, r := range m.res {
		tags, ok := r.in("tags").(map[string]any)
		if _, takes := r.Inputs["tags"]; !takes && r.Type != typeAccessBlock && r.Type != typeEncryption && r.Type != typeAttachment && r.Type != typeRolePolicy {
			t.Errorf("%s %s has no tags", r.Type, r.Name)
		}
		if ok && (tags[TagService] != "shop" || tags["team"] != "shop") {
			t.Errorf("%s %s tags = %v", r.Type, r.Name, tags)
		}
	}
}

func TestBakeBucketIsPrivateAndEncrypted(t *testing.T) {
	m, _ := run(t, Bake(bakeInput(testImage(t, t.TempDir(), "1.0.0", 1))), false)
	m.get(t, typeBucket, "shop-artifacts")
	block := m.get(t, typeAccessBlock, "shop-artifacts")
	for _, k := range []string{"blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"} {
		if block.in(k) != true {
			t.Errorf("public access block %s = %v", k, block.in(k))
		}
	}
	enc := m.get(t, typeEncryption, "shop-artifacts").in("rules").([]any)[0].(map[string]any)
	if got := enc["applyServerSideEncryptionByDefault"].(map[string]any)["sseAlgorithm"]; got != "AES256" {
		t.Errorf("encryption = %v", got)
	}

	// A bucket the manifest names is used as it is.
	in := bakeInput(testImage(t, t.TempDir(), "1.0.0", 1))
	in.Settings.ArtifactsBucket = "team-artifacts"
	m, out := run(t, Bake(in), false)
	if n := len(m.ofType(typeBucket)) + len(m.ofType(typeAccessBlock)) + len(m.ofType(typeEncryption)); n != 0 {
		t.Errorf("%d bucket resources declared for an existing bucket", n)
	}
	if out[OutputBucket] != "team-artifacts" || m.get(t, typeObject, "shop-"+digestName(in.Images[0].Digest)+"-payload").str("bucket") != "team-artifacts" {
		t.Errorf("bucket = %v, payload not in the named bucket", out[OutputBucket])
	}
}

// componentSteps decodes a component document into its phases' steps' commands.
func componentSteps(t *testing.T, doc string) map[string][]string {
	t.Helper()
	var d struct {
		SchemaVersion string `yaml:"schemaVersion"`
		Phases        []struct {
			Name  string
			Steps []struct {
				Name, Action string
				Inputs       yaml.Node
			}
		}
	}
	if err := yaml.Unmarshal([]byte(doc), &d); err != nil {
		t.Fatalf("component document is not YAML: %v\n%s", err, doc)
	}
	out := map[string][]string{}
	for _, p := range d.Phases {
		for _, s := range p.Steps {
			switch s.Action {
			case "ExecuteBash":
				var in struct{ Commands []string }
				if err := s.Inputs.Decode(&in); err != nil {
					t.Fatal(err)
				}
				out[p.Name] = append(out[p.Name], in.Commands...)
			default:
				t.Errorf("step %s: unexpected action %s", s.Name, s.Action)
			}
		}
	}
	return out
}

func TestBakeComponentFetchesVerifiesAndInstallsThePayload(t *testing.T) {
	img := testImage(t, t.TempDir(), "1.0.0", 3)
	in := bakeInput(img)
	in.Settings.ArtifactsBucket = "team-artifacts"
	m, _ := run(t, Bake(in), false)
	comp := m.get(t, typeComponent, "shop-"+digestName(img.Digest))
	if comp.str("platform") != "Linux" {
		t.Errorf("platform = %q", comp.str("platform"))
	}
	steps := componentSteps(t, comp.str("data"))
	build := strings.Join(steps["build"], "\n")
	key := "shop/" + strings.TrimPrefix(img.Digest, "sha256:") + "/image.tar.gz"
	for _, want := range []string{
		"aws s3 cp 's3://team-artifacts/" + key + "' /tmp/kiln-payload.tar.gz",
		"echo '" + img.PayloadSHA256 + "  /tmp/kiln-payload.tar.gz' | sha256sum -c -",
		"tar -xzf /tmp/kiln-payload.tar.gz -C /opt/kiln/image",
		"install -m 0755 /opt/kiln/image/bin/kiln-boot /opt/kiln/bin/kiln-boot",
		"' > /etc/systemd/system/kiln-boot.service",
		"'ExecStart=/opt/kiln/bin/kiln-boot --spec /etc/kiln/boot.json'",
		"'Restart=always'",
		"'ConditionPathExists=/etc/kiln/boot.json'",
		"systemctl enable kiln-boot.service",
	} {
		if !strings.Contains(build, want) {
			t.Errorf("build phase lacks %q:\n%s", want, build)
		}
	}
	if strings.Index(build, "sha256sum -c") > strings.Index(build, "tar -xzf") {
		t.Error("the payload is unpacked before its sha256 is checked")
	}
	for phase, cmds := range steps {
		bashSyntax(t, phase, strings.Join(cmds, "\n"))
	}
	want := []string{"set -euo pipefail", "/opt/kiln/bin/kiln-boot --verify /opt/kiln/image --digest " + img.Digest}
	if !reflect.DeepEqual(steps["validate"], want) {
		t.Errorf("validate phase = %q, want %q", steps["validate"], want)
	}
}

func TestBakeBuilderRoleReadsExactlyThePayloads(t *testing.T) {
	dir := t.TempDir()
	a, b := testImage(t, dir, "1.0.0", 1), testImage(t, dir, "1.1.0", 2)
	m, out := run(t, Bake(bakeInput(a, b)), false)
	bucket := out[OutputBucket].(string)
	var atts []string
	for _, r := range m.ofType(typeAttachment) {
		atts = append(atts, r.str("policyArn"))
	}
	slices.Sort(atts)
	if want := []string{ssmManagedInstanceCore, imageBuilderInstanceRole}; !reflect.DeepEqual(atts, want) {
		t.Errorf("managed policies = %v, want %v", atts, want)
	}
	got := statements(t, m.get(t, typeRolePolicy, "shop-builder").str("policy"))
	want := []stmt{{Action: []string{"s3:GetObject"}, Resource: []string{
		"arn:aws:s3:::" + bucket + "/" + objectKey("shop", a.Digest, payloadObject),
		"arn:aws:s3:::" + bucket + "/" + objectKey("shop", b.Digest, payloadObject),
	}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("builder policy = %+v, want %+v", got, want)
	}
	infra := m.get(t, typeInfra, "shop-builder")
	profile := m.get(t, typeProfile, "shop-builder").Outputs["name"].StringValue()
	if infra.str("instanceProfileName") != profile || infra.str("subnetId") != "subnet-0a" {
		t.Errorf("infrastructure configuration: profile %q subnet %q", infra.str("instanceProfileName"), infra.str("subnetId"))
	}
	if md := infra.in("instanceMetadataOptions").(map[string]any); md["httpTokens"] != "required" {
		t.Errorf("builder instance metadata = %v, want IMDSv2 required", md)
	}
	for name, img := range m.ofType(typeImage) {
		if img.str("infrastructureConfigurationArn") != infra.Outputs["arn"].StringValue() {
			t.Errorf("image %s does not use the shared infrastructure configuration", name)
		}
	}
}

// declared is every resource of a run with its inputs, for comparing runs.
func declared(m *awsModel) map[string]resource.PropertyMap {
	out := map[string]resource.PropertyMap{}
	for k, r := range m.res {
		out[k] = r.Inputs
	}
	return out
}

func TestBakeReusesKeptImagesAndDropsOnlyTheDroppedOne(t *testing.T) {
	dir := t.TempDir()
	a, b := testImage(t, dir, "1.0.0", 1), testImage(t, dir, "1.1.0", 2)
	first, out := run(t, Bake(bakeInput(a, b)), false)

	// The next bake gets the kept images back from the stack's output, without local
	// files: same names, same inputs, so no Image Builder run.
	var kept []BakeImage
	if err := json.Unmarshal([]byte(out[OutputImages].(string)), &kept); err != nil {
		t.Fatal(err)
	}
	again, _ := run(t, Bake(bakeInput(kept...)), false)
	if !reflect.DeepEqual(first.names(), again.names()) {
		t.Fatalf("names changed:\n%v\n%v", first.names(), again.names())
	}
	for k, in := range declared(first) {
		if strings.HasPrefix(k, typeObject) {
			continue // sources ignored once uploaded, see below
		}
		if !reflect.DeepEqual(in, again.res[k].Inputs) {
			t.Errorf("%s inputs changed:\n%v\n%v", k, in, again.res[k].Inputs)
		}
	}
	for name, obj := range again.ofType(typeObject) {
		if !slices.Contains(obj.RPC.GetIgnoreChanges(), "source") {
			t.Errorf("object %s of a kept image would be uploaded again", name)
		}
	}

	// Dropping a: exactly a's resources go.
	dropped, _ := run(t, Bake(bakeInput(b)), false)
	var gone []string
	for _, k := range first.names() {
		if _, ok := dropped.res[k]; !ok {
			gone = append(gone, k)
		}
	}
	short := "shop-" + digestName(a.Digest)
	want := []string{typeComponent + "::" + short, typeDist + "::" + short, typeImage + "::" + short, typeRecipe + "::" + short, typeObject + "::" + short + "-payload", typeObject + "::" + short + "-sbom"}
	slices.Sort(want)
	slices.Sort(gone)
	if !reflect.DeepEqual(gone, want) {
		t.Errorf("dropping %s removed %v, want %v", a.Digest, gone, want)
	}
	if len(dropped.res) != len(first.res)-len(want) {
		t.Errorf("dropping an image added resources: %v", dropped.names())
	}
}

func TestBakePreviewHasTheSameGraphWithUnknownAMIs(t *testing.T) {
	dir := t.TempDir()
	a := testImage(t, dir, "1.0.0", 1)
	applied, _ := run(t, Bake(bakeInput(a)), false)
	preview, out := run(t, Bake(bakeInput(a)), true)
	if !reflect.DeepEqual(applied.names(), preview.names()) {
		t.Errorf("preview declares %v, update %v", preview.names(), applied.names())
	}
	if amis, _ := out[OutputAMIs].(map[string]any); amis[a.Digest] != nil {
		t.Errorf("preview knows the AMI before Image Builder ran: %v", amis)
	}
	// Unknown until the bucket exists: the component's document arrives as null.
	if d := preview.get(t, typeComponent, "shop-"+digestName(a.Digest)).in("data"); d != nil {
		t.Errorf("component document known in preview before the bucket: %v", d)
	}
}

func TestBakeRefusesBadInput(t *testing.T) {
	good := testImage(t, t.TempDir(), "1.0.0", 1)
	for name, mutate := range map[string]func(*BakeInput){
		"digest":    func(in *BakeInput) { in.Images[0].Digest = "sha256:xyz" },
		"sha256":    func(in *BakeInput) { in.Images[0].PayloadSHA256 = "abc" },
		"twice":     func(in *BakeInput) { in.Images = append(in.Images, in.Images[0]) },
		"subnets":   func(in *BakeInput) { in.Settings.Subnets = nil },
		"no parent": func(in *BakeInput) { in.Settings.ParentImage = "" },
	} {
		t.Run(name, func(t *testing.T) {
			in := bakeInput(good)
			in.Images = slices.Clone(in.Images)
			in.Settings.Tags = maps.Clone(in.Settings.Tags)
			mutate(&in)
			if _, _, err := runErr(Bake(in), false); err == nil {
				t.Error("no error")
			}
		})
	}
}

func TestBakeWithoutImagesKeepsOnlyTheSharedResources(t *testing.T) {
	m, out := run(t, Bake(bakeInput()), false)
	for _, typ := range []string{typeObject, typeComponent, typeRecipe, typeDist, typeImage, typeRolePolicy} {
		if n := len(m.ofType(typ)); n != 0 {
			t.Errorf("%d %s without images", n, typ)
		}
	}
	m.get(t, typeInfra, "shop-builder")
	if amis, _ := out[OutputAMIs].(map[string]any); len(amis) != 0 || out[OutputImages] != "[]" {
		t.Errorf("amis %v images %v", out[OutputAMIs], out[OutputImages])
	}
}

// bashSyntax has bash parse a script without running it.
func bashSyntax(t *testing.T, what, script string) {
	t.Helper()
	if out, err := exec.Command("bash", "-n", "-c", script).CombinedOutput(); err != nil {
		t.Errorf("%s is not valid bash: %v\n%s\n%s", what, err, out, script)
	}
}
