// A producer that is not likes-ingest: Pulsar's own Java client, for the tests of entries the
// workers' client (pulsar-rs, built with LZ4 only) cannot unpack. Run by
// `infra/dev/services pulsar-java infra/dev/pulsar/ForeignProducer.java ...` (the JDK's
// single-file source launcher, on the broker's classpath).
//
//   ForeignProducer URL TOPIC COMPRESSION KEY HEX...
//
// Sends each HEX payload with key KEY to TOPIC (a partition's own topic, or a partitioned topic
// that routes by key), compressed with COMPRESSION (NONE, LZ4, ZLIB, ZSTD, SNAPPY), all of them
// in one batch entry when there are several; prints each message id once the broker acked it.
import java.util.ArrayList;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.apache.pulsar.client.api.CompressionType;
import org.apache.pulsar.client.api.MessageId;
import org.apache.pulsar.client.api.Producer;
import org.apache.pulsar.client.api.PulsarClient;

public class ForeignProducer {
    public static void main(String[] args) throws Exception {
        if (args.length < 5) {
            System.err.println("usage: ForeignProducer URL TOPIC COMPRESSION KEY HEX...");
            System.exit(2);
        }
        int payloads = args.length - 4;
        try (PulsarClient client = PulsarClient.builder().serviceUrl(args[0]).build();
             Producer<byte[]> producer = client.newProducer()
                 .topic(args[1])
                 .compressionType(CompressionType.valueOf(args[2]))
                 .enableBatching(payloads > 1)
                 .batchingMaxMessages(payloads)
                 .batchingMaxPublishDelay(1, TimeUnit.SECONDS)
                 .create()) {
            List<CompletableFuture<MessageId>> sent = new ArrayList<>();
            for (int i = 4; i < args.length; i++) {
                sent.add(producer.newMessage().key(args[3]).value(HexFormat.of().parseHex(args[i])).sendAsync());
            }
            for (CompletableFuture<MessageId> id : sent) {
                System.out.println(id.get(30, TimeUnit.SECONDS));
            }
        }
    }
}
