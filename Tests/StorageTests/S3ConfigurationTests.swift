import ConveyorCore
import Testing

@testable import Storage

@Suite struct S3ConfigurationTests {
    let credentials = ["AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret/with+chars"]

    @Test func awsDefaultsFromTheRegion() throws {
        var env = credentials
        env["AWS_DEFAULT_REGION"] = "eu-central-1"
        let configuration = try S3Configuration(environment: env)
        #expect(configuration.region == "eu-central-1")
        #expect(configuration.endpoint == "https://s3.eu-central-1.amazonaws.com")
        #expect(configuration.pathStyle == false)
        #expect(configuration.sessionToken == nil)
        #expect(configuration.multipartThreshold == 16 << 20 && configuration.partSize == 8 << 20 && configuration.parallelParts == 4)
        env["AWS_REGION"] = "us-west-2"
        #expect(try S3Configuration(environment: env).region == "us-west-2", "AWS_REGION wins over AWS_DEFAULT_REGION")
    }

    @Test func anEndpointOverrideTurnsOnPathStyle() throws {
        var env = credentials
        env["AWS_ENDPOINT_URL"] = "http://other:1"
        env["AWS_ENDPOINT_URL_S3"] = "http://127.0.0.1:8333/"
        env["AWS_SESSION_TOKEN"] = "token"
        env["CONVEYOR_S3_MULTIPART_MB"] = "32"
        env["CONVEYOR_S3_PART_MB"] = "5"
        env["CONVEYOR_S3_PARALLEL_PARTS"] = "8"
        let configuration = try S3Configuration(environment: env)
        #expect(configuration.endpoint == "http://127.0.0.1:8333")
        #expect(configuration.region == "us-east-1")
        #expect(configuration.pathStyle)
        #expect(configuration.sessionToken == "token")
        #expect(configuration.multipartThreshold == 32 << 20 && configuration.partSize == 5 << 20 && configuration.parallelParts == 8)
        env["CONVEYOR_S3_PATH_STYLE"] = "off"
        #expect(try S3Configuration(environment: env).pathStyle == false)
        env.removeValue(forKey: "AWS_ENDPOINT_URL_S3")
        #expect(try S3Configuration(environment: env).endpoint == "http://other:1")
    }

    @Test(arguments: [
        ("AWS_ACCESS_KEY_ID", nil), ("AWS_SECRET_ACCESS_KEY", nil), ("AWS_REGION", "US East"), ("AWS_ENDPOINT_URL_S3", "s3.local:9000"),
        ("AWS_ENDPOINT_URL_S3", "http://user:pw@host"), ("AWS_ENDPOINT_URL_S3", "http://host:99999"), ("CONVEYOR_S3_PATH_STYLE", "maybe"),
        ("CONVEYOR_S3_PART_MB", "4"), ("CONVEYOR_S3_PARALLEL_PARTS", "many"), ("CONVEYOR_S3_MULTIPART_MB", "0"),
        ("CONVEYOR_S3_CA_FILE", "/nonexistent/ca.pem"),
    ] as [(String, String?)])
    func badOrMissingValuesNameTheVariable(name: String, value: String?) {
        var env = credentials
        env[name] = value
        let error = #expect(throws: JobFailure.self) { try S3Configuration(environment: env) }
        #expect(error?.errorClass == "InvalidConfiguration")
        #expect(error?.message.contains(name) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("secret/with+chars") == false)
    }

    @Test func locations() throws {
        #expect(try S3Location(parsing: "s3://media-bucket") == S3Location(bucket: "media-bucket", prefix: ""))
        let location = try S3Location(parsing: "s3://media.example-1/uploads/2026/")
        #expect(location == S3Location(bucket: "media.example-1", prefix: "uploads/2026"))
        #expect(location.objectKey("abc.jpg") == "uploads/2026/abc.jpg")
        #expect(try S3Location(parsing: "s3://abc").objectKey("x/y.png") == "x/y.png")
    }

    @Test(arguments: [
        "media-bucket", "s3://", "s3://ab", "s3://Media", "s3://-media", "s3://media-", "s3://me..dia", "s3://192.168.1.1",
        "s3://xn--media", "s3://media_bucket", "s3://media/a//b", "s3://media/../etc", "s3://media/./x",
        "s3://\(String(repeating: "a", count: 64))",
    ])
    func badLocationsAreRefused(text: String) {
        let error = #expect(throws: JobFailure.self) { try S3Location(parsing: text) }
        #expect(error?.errorClass == "InvalidConfiguration")
        #expect(error?.isPermanent == true)
    }

    @Test func errorDocumentsAreReadMinimally() {
        let body = """
            <?xml version="1.0" encoding="UTF-8"?>
            <Error><Code>NoSuchKey</Code><Message>The resource &lt;x&gt; &amp; &#233; does not exist.</Message>\
            <RequestId>4442587FB7D0A2F9</RequestId></Error>
            """
        #expect(S3XML.first("Code", in: body) == "NoSuchKey")
        #expect(S3XML.first("Message", in: body) == "The resource <x> & é does not exist.")
        #expect(S3XML.first("RequestId", in: body) == "4442587FB7D0A2F9")
        #expect(S3XML.first("Key", in: body) == nil)
        #expect(S3XML.escape("\"a\"&<b>") == "&quot;a&quot;&amp;&lt;b&gt;")
        let listing = "<Upload><Key>a</Key><UploadId>1</UploadId></Upload><Upload><Key>b&amp;c</Key><UploadId>2</UploadId></Upload>"
        #expect(S3XML.blocks("Upload", in: listing).map { S3XML.first("Key", in: String($0)) } == ["a", "b&c"])
    }
}
