package dev.blenderjobs;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import com.tngtech.archunit.lang.ArchRule;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.lang.syntax.ArchRuleDefinition.noClasses;

/**
 * The package layering ARCHITECTURE.md states, checked on the compiled classes: a dependency
 * that points up the layers (or across the worker seam) fails the build.
 * <pre>
 *   dev.blenderjobs (Main, BlenderJobsServer: wiring)
 *   wire            store
 *   jobs
 *   workers   (the pool; workers.local and workers.slurm are launchers behind the seam)
 *   channel
 *   model  io  concurrent  config  runtime
 * </pre>
 */
class ArchitectureTest {
    private static JavaClasses classes;

    @BeforeAll
    static void importClasses() {
        classes = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("dev.blenderjobs");
    }

    private static void check(ArchRule rule) {
        rule.check(classes);
    }

    private static final String ROOT = "dev.blenderjobs";

    @Test
    void theModelDependsOnNothingOfTheServer() {
        check(noClasses().that().resideInAPackage(ROOT + ".model..").should().dependOnClassesThat()
                .resideInAnyPackage(ROOT + ".channel..", ROOT + ".workers..", ROOT + ".jobs..", ROOT + ".store..",
                        ROOT + ".wire..", ROOT + ".config..", ROOT + ".concurrent..", ROOT + ".io..",
                        ROOT + ".runtime.."));
    }

    @Test
    void foundationPackagesStayAtTheBottom() {
        check(noClasses().that().resideInAnyPackage(ROOT + ".io..", ROOT + ".concurrent..", ROOT + ".config..",
                        ROOT + ".runtime..")
                .should().dependOnClassesThat().resideInAnyPackage(ROOT + ".channel..", ROOT + ".workers..",
                        ROOT + ".jobs..", ROOT + ".store..", ROOT + ".wire.."));
    }

    @Test
    void theChannelKnowsNoWorkersJobsOrClients() {
        check(noClasses().that().resideInAPackage(ROOT + ".channel..").should().dependOnClassesThat()
                .resideInAnyPackage(ROOT + ".workers..", ROOT + ".jobs..", ROOT + ".store..", ROOT + ".wire.."));
    }

    @Test
    void workersDoNotDecideAJobsFate() {
        check(noClasses().that().resideInAPackage(ROOT + ".workers..").should().dependOnClassesThat()
                .resideInAnyPackage(ROOT + ".jobs..", ROOT + ".store..", ROOT + ".wire.."));
    }

    @Test
    void thePoolTalksToConnectedWorkersOnlyNotToALauncher() {
        check(noClasses().that().resideInAPackage(ROOT + ".workers").should().dependOnClassesThat()
                .resideInAnyPackage(ROOT + ".workers.local..", ROOT + ".workers.slurm.."));
    }

    @Test
    void launchersDoNotKnowEachOther() {
        check(noClasses().that().resideInAPackage(ROOT + ".workers.local..").should().dependOnClassesThat()
                .resideInAPackage(ROOT + ".workers.slurm.."));
        check(noClasses().that().resideInAPackage(ROOT + ".workers.slurm..").should().dependOnClassesThat()
                .resideInAPackage(ROOT + ".workers.local.."));
    }

    @Test
    void jobsKnowNoStoreClientOrLauncher() {
        check(noClasses().that().resideInAPackage(ROOT + ".jobs..").should().dependOnClassesThat()
                .resideInAnyPackage(ROOT + ".store..", ROOT + ".wire..", ROOT + ".workers.local..",
                        ROOT + ".workers.slurm.."));
    }

    @Test
    void theStoreKnowsNoClient() {
        check(noClasses().that().resideInAPackage(ROOT + ".store..").should().dependOnClassesThat()
                .resideInAnyPackage(ROOT + ".wire..", ROOT + ".workers.."));
    }

    @Test
    void theWireKnowsNoStoreAndNoLauncher() {
        check(noClasses().that().resideInAPackage(ROOT + ".wire..").should().dependOnClassesThat()
                .resideInAnyPackage(ROOT + ".store..", ROOT + ".workers.local..", ROOT + ".workers.slurm.."));
    }

    @Test
    void onlyTheWiringReachesIntoEveryLayer() {
        check(noClasses().that().resideOutsideOfPackage(ROOT).should().dependOnClassesThat()
                .resideInAPackage(ROOT));
    }
}
