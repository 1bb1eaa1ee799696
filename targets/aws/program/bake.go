package program

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/imagebuilder"
	"github.com/pulumi/pulumi-aws/sdk/v6/go/aws/s3"
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// The AWS managed policies the image builder's instance needs: Systems Manager runs the
// build on it, Image Builder's own permissions (logs, component downloads).
const (
	ssmManagedInstanceCore   = "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore"
	imageBuilderInstanceRole = "arn:aws:iam::aws:policy/EC2InstanceProfileForImageBuilder"
)

// keptPayload is the source declared for an image kept from an earlier bake, whose local
// payload is gone: the object is already uploaded and its source is ignored.
const keptPayload = "kiln: uploaded by an earlier bake"

// Bake returns the images stack's program: the artifacts bucket (unless the manifest names
// one), and per image its payload and SBOM in the bucket, an Image Builder component,
// recipe, distribution and image, all named after the image's digest so an image the stack
// keeps is never built again and an image dropped from in.Images takes only its own
// resources with it. One infrastructure configuration, with a builder role that may read
// exactly the payloads, serves every image.
func Bake(in BakeInput) pulumi.RunFunc {
	return func(ctx *pulumi.Context) error {
		if err := in.validate(); err != nil {
			return err
		}
		s := in.Settings
		svcTags := tagMap(s, TagService, in.Service)
		bucket, err := artifactsBucket(ctx, in.Service, s, svcTags)
		if err != nil {
			return err
		}
		var payloadARNs []pulumi.StringInput
		for _, img := range in.Images {
			payloadARNs = append(payloadARNs, pulumi.Sprintf("arn:aws:s3:::%s/%s", bucket, objectKey(in.Service, img.Digest, payloadObject)))
		}
		var readPayloads pulumi.StringInput // none without images: IAM refuses a statement on no resource
		if len(payloadARNs) > 0 {
			readPayloads = pulumi.All(toAny(payloadARNs)...).ApplyT(func(arns []any) (string, error) {
				return marshalPolicy([]json.RawMessage{allow("ReadPayloads", []string{"s3:GetObject"}, toStrings(arns))})
			}).(pulumi.StringOutput)
		}
		profile, grants, err := instanceProfile(ctx, in.Service+"-builder", svcTags, readPayloads, ssmManagedInstanceCore, imageBuilderInstanceRole)
		if err != nil {
			return err
		}
		infra, err := imagebuilder.NewInfrastructureConfiguration(ctx, in.Service+"-builder", &imagebuilder.InfrastructureConfigurationArgs{
			Description:                pulumi.String("kiln: bakes the AMIs of " + in.Service),
			InstanceProfileName:        profile.Name,
			InstanceTypes:              pulumi.StringArray{pulumi.String(s.InstanceType)},
			SubnetId:                   pulumi.String(s.Subnets[0]),
			TerminateInstanceOnFailure: pulumi.Bool(true),
			InstanceMetadataOptions: &imagebuilder.InfrastructureConfigurationInstanceMetadataOptionsArgs{
				HttpTokens: pulumi.String("required"), HttpPutResponseHopLimit: pulumi.Int(1),
			},
			Tags:         svcTags,
			ResourceTags: svcTags,
		})
		if err != nil {
			return err
		}
		amis := pulumi.StringMap{}
		for _, img := range in.Images {
			ami, err := bakeImage(ctx, in.Service, s, bucket, infra, grants, img)
			if err != nil {
				return fmt.Errorf("image %s: %w", img.Digest, err)
			}
			amis[img.Digest] = ami
		}
		kept, err := json.Marshal(withoutPaths(in.Images))
		if err != nil {
			return err
		}
		ctx.Export(OutputAMIs, amis)
		ctx.Export(OutputBucket, bucket)
		ctx.Export(OutputImages, pulumi.String(string(kept)))
		return nil
	}
}

func (in BakeInput) validate() error {
	var errs []error
	if in.Service == "" {
		errs = append(errs, errors.New("bake: no service"))
	}
	s := in.Settings
	if len(s.Subnets) == 0 {
		errs = append(errs, errors.New("bake: no subnet for the image builder"))
	}
	if s.InstanceType == "" || s.ParentImage == "" || s.Region == "" {
		errs = append(errs, errors.New("bake: the region, instance type and parent image must be set"))
	}
	seen := map[string]string{} // resource name part -> digest
	for i, img := range in.Images {
		if err := checkDigest(img.Digest); err != nil {
			errs = append(errs, fmt.Errorf("bake: images[%d]: %w", i, err))
			continue
		}
		switch other, dup := seen[digestName(img.Digest)]; {
		case dup && other == img.Digest:
			errs = append(errs, fmt.Errorf("bake: images[%d]: %s is listed twice", i, img.Digest))
		case dup:
			errs = append(errs, fmt.Errorf("bake: images[%d]: %s and %s share the name %s: drop one", i, img.Digest, other, digestName(img.Digest)))
		}
		seen[digestName(img.Digest)] = img.Digest
		if !isHex64(img.PayloadSHA256) {
			errs = append(errs, fmt.Errorf("bake: images[%d] (%s): payload sha256 %q is not 64 lowercase hex digits", i, img.Digest, img.PayloadSHA256))
		}
	}
	return errors.Join(errs...)
}

// artifactsBucket returns the name of the bucket that holds the payloads, creating a private,
// encrypted bucket when the manifest names none.
func artifactsBucket(ctx *pulumi.Context, service string, s Settings, tagsIn pulumi.StringMap) (pulumi.StringOutput, error) {
	if s.ArtifactsBucket != "" {
		return pulumi.String(s.ArtifactsBucket).ToStringOutput(), nil
	}
	name := service + "-artifacts"
	b, err := s3.NewBucketV2(ctx, name, &s3.BucketV2Args{Tags: tagsIn})
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	if _, err := s3.NewBucketPublicAccessBlock(ctx, name, &s3.BucketPublicAccessBlockArgs{
		Bucket:          b.ID(),
		BlockPublicAcls: pulumi.Bool(true), BlockPublicPolicy: pulumi.Bool(true),
		IgnorePublicAcls: pulumi.Bool(true), RestrictPublicBuckets: pulumi.Bool(true),
	}); err != nil {
		return pulumi.StringOutput{}, err
	}
	if _, err := s3.NewBucketServerSideEncryptionConfigurationV2(ctx, name, &s3.BucketServerSideEncryptionConfigurationV2Args{
		Bucket: b.ID(),
		Rules: s3.BucketServerSideEncryptionConfigurationV2RuleArray{&s3.BucketServerSideEncryptionConfigurationV2RuleArgs{
			ApplyServerSideEncryptionByDefault: &s3.BucketServerSideEncryptionConfigurationV2RuleApplyServerSideEncryptionByDefaultArgs{
				SseAlgorithm: pulumi.String("AES256"),
			},
		}},
	}); err != nil {
		return pulumi.StringOutput{}, err
	}
	return b.Bucket, nil
}

// The objects of an image in the artifacts bucket.
const (
	payloadObject = "image.tar.gz"
	sbomObject    = "sbom.cdx.json"
)

// objectKey is where an image's object lives in the artifacts bucket.
func objectKey(service, digest, object string) string {
	return service + "/" + strings.TrimPrefix(digest, "sha256:") + "/" + object
}

// bakeImage declares one image's resources and returns its AMI ID.
func bakeImage(ctx *pulumi.Context, service string, s Settings, bucket pulumi.StringOutput, infra *imagebuilder.InfrastructureConfiguration, grants []pulumi.Resource, img BakeImage) (pulumi.StringOutput, error) {
	name := service + "-" + digestName(img.Digest)
	imgTags := tagMap(s, TagService, service, TagVersion, img.Version, TagDigest, img.Digest, TagRecipeKey, img.RecipeKey)
	key := objectKey(service, img.Digest, payloadObject)
	payload, err := upload(ctx, name+"-payload", bucket, key, img.Payload, imgTags, pulumi.StringMap{"sha256": pulumi.String(img.PayloadSHA256)})
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	if _, err := upload(ctx, name+"-sbom", bucket, objectKey(service, img.Digest, sbomObject), img.SBOM, imgTags, nil); err != nil {
		return pulumi.StringOutput{}, err
	}
	doc := bucket.ApplyT(func(b string) (string, error) { return componentDocument(service, b, key, img) }).(pulumi.StringOutput)
	comp, err := imagebuilder.NewComponent(ctx, name, &imagebuilder.ComponentArgs{
		Description: pulumi.String("kiln: installs image " + img.Digest),
		Platform:    pulumi.String("Linux"),
		Version:     pulumi.String("1.0.0"),
		Data:        doc,
		Tags:        imgTags,
	})
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	recipe, err := imagebuilder.NewImageRecipe(ctx, name, &imagebuilder.ImageRecipeArgs{
		ParentImage: pulumi.String(s.ParentImage),
		Version:     pulumi.String("1.0.0"),
		Components:  imagebuilder.ImageRecipeComponentArray{&imagebuilder.ImageRecipeComponentArgs{ComponentArn: comp.Arn}},
		Tags:        imgTags,
	})
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	// The distribution tags the AMI itself (an image's own tags stay on Image Builder's
	// record of it).
	dist, err := imagebuilder.NewDistributionConfiguration(ctx, name, &imagebuilder.DistributionConfigurationArgs{
		Distributions: imagebuilder.DistributionConfigurationDistributionArray{&imagebuilder.DistributionConfigurationDistributionArgs{
			Region: pulumi.String(s.Region),
			AmiDistributionConfiguration: &imagebuilder.DistributionConfigurationDistributionAmiDistributionConfigurationArgs{
				Name:    pulumi.String(name + "-{{ imagebuilder:buildDate }}"),
				AmiTags: imgTags,
			},
		}},
		Tags: imgTags,
	})
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	image, err := imagebuilder.NewImage(ctx, name, &imagebuilder.ImageArgs{
		ImageRecipeArn:                 recipe.Arn,
		InfrastructureConfigurationArn: infra.Arn,
		DistributionConfigurationArn:   dist.Arn,
		// The component's validate phase is the image's test: no second instance for tests.
		ImageTestsConfiguration: &imagebuilder.ImageImageTestsConfigurationArgs{ImageTestsEnabled: pulumi.Bool(false)},
		Tags:                    imgTags,
	}, pulumi.DependsOn(append([]pulumi.Resource{payload}, grants...)))
	if err != nil {
		return pulumi.StringOutput{}, err
	}
	return image.OutputResources.Index(pulumi.Int(0)).Amis().Index(pulumi.Int(0)).Image().Elem(), nil
}

// upload declares an object of the artifacts bucket holding the local file at path. An
// image kept from an earlier bake comes without its local files: its objects are left as
// they were uploaded.
func upload(ctx *pulumi.Context, name string, bucket pulumi.StringOutput, key, path string, tagsIn, meta pulumi.StringMap) (*s3.BucketObjectv2, error) {
	var src pulumi.AssetOrArchiveInput = pulumi.NewFileAsset(path)
	var opts []pulumi.ResourceOption
	if path == "" {
		src = pulumi.NewStringAsset(keptPayload)
		opts = append(opts, pulumi.IgnoreChanges([]string{"source"}))
	}
	return s3.NewBucketObjectv2(ctx, name, &s3.BucketObjectv2Args{
		Bucket:   bucket,
		Key:      pulumi.String(key),
		Source:   src,
		Metadata: meta,
		Tags:     tagsIn,
	}, opts...)
}

// withoutPaths is images as the stack exports them: no local paths, which mean nothing to
// the next bake (possibly on another machine).
func withoutPaths(imgs []BakeImage) []BakeImage {
	out := make([]BakeImage, 0, len(imgs))
	for _, img := range imgs {
		img.Payload, img.SBOM = "", ""
		out = append(out, img)
	}
	return out
}

func toAny(in []pulumi.StringInput) []any {
	out := make([]any, len(in))
	for i, v := range in {
		out[i] = v
	}
	return out
}

func toStrings(in []any) []string {
	out := make([]string, len(in))
	for i, v := range in {
		out[i] = v.(string)
	}
	return out
}
