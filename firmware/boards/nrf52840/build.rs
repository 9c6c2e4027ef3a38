fn main() {
    akida_embedded_build::memory_x("memory.x");
    akida_embedded_build::embed_model("../../models/default.akd");
}
