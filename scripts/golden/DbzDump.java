// Dumps the change events of the Debezium embedded engine (JSON, schemas on) as
// "<topic>\t<key>\t<value>" lines to dbz_events.jsonl: the golden data of our format
// tests. usage: java -cp "$LIBS/*:." DbzDump <props> <expected events> [shell command run
// after the first event]. DBZ_VALUE_FORMAT=cloudevents writes values with Debezium's
// CloudEventsConverter instead (keys stay JSON).
import io.debezium.engine.ChangeEvent;
import io.debezium.engine.DebeziumEngine;
import io.debezium.engine.format.Json;
import java.io.*;
import java.util.*;
import java.util.concurrent.*;
import java.util.concurrent.atomic.*;

public class DbzDump {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        try (FileInputStream in = new FileInputStream(args[0])) { props.load(in); }
        final long expect = Long.parseLong(args[1]);
        final String trigger = args.length > 2 ? args[2] : null;
        final AtomicLong count = new AtomicLong();
        final CountDownLatch done = new CountDownLatch(1);
        final PrintStream out = new PrintStream(new FileOutputStream("dbz_events.jsonl"), true);
        boolean cloudEvents = "cloudevents".equals(System.getenv("DBZ_VALUE_FORMAT"));
        DebeziumEngine.Builder<ChangeEvent<String, String>> builder = cloudEvents
            ? DebeziumEngine.create(io.debezium.engine.format.KeyValueChangeEventFormat.of(Json.class, io.debezium.engine.format.CloudEvents.class))
            : DebeziumEngine.create(Json.class);
        DebeziumEngine<ChangeEvent<String, String>> engine = builder
            .using(props)
            .notifying((records, committer) -> {
                for (ChangeEvent<String, String> r : records) {
                    out.println(r.destination() + "\t" + r.key() + "\t" + r.value());
                    long c = count.incrementAndGet();
                    if (c == 1 && trigger != null) {
                        try { new ProcessBuilder("bash", "-c", trigger).inheritIO().start().waitFor(); } catch (Exception e) { e.printStackTrace(); }
                    }
                    if (c >= expect) done.countDown();
                    committer.markProcessed(r);
                }
                committer.markBatchFinished();
            })
            .using((success, message, error) -> { if (!success) { System.err.println("stopped: " + message); if (error != null) error.printStackTrace(); done.countDown(); } })
            .build();
        ExecutorService ex = Executors.newSingleThreadExecutor();
        ex.execute(engine);
        done.await(120, TimeUnit.SECONDS);
        try { engine.close(); } catch (Exception e) {}
        ex.shutdown(); ex.awaitTermination(30, TimeUnit.SECONDS);
        System.out.println("events=" + count.get());
        System.exit(0);
    }
}
