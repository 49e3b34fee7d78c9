return require("dama.models").loss
